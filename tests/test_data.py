"""minseg.data: the built-in datasets, the cache, the on-disk format, batches, and clear errors."""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minseg import data
from minseg.data import formats, registry


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache directory holding every built-in dataset at seed 0 (made once for this module)."""
    root = tmp_path_factory.mktemp("minseg-cache")
    for name in data.BUILTINS:
        data.prepare_builtin(name, seed=0, root=root)
    return root


def _tiny_splits(n=3, K=3, C=1, H=5, W=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, C, H, W), dtype=np.uint8)
    labels = rng.integers(0, K, size=(n, H, W)).astype(np.uint8)
    labels[:, 0, 0] = 255
    instances = rng.integers(0, 4, size=(n, H, W)).astype(np.int32)
    return {"train": (images, labels, instances), "val": (images[:1], labels[:1], instances[:1])}


def _tiny_meta(K=3):
    return {"name": "tiny", "class_names": [f"c{k}" for k in range(K)], "palette": data.make_palette(K),
            "things": [False] + [True] * (K - 1), "ignore_index": 255}


def _leftovers(parent: Path):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- built-ins

def test_list_datasets_names_the_builtins(tmp_path):
    assert data.list_datasets(root=tmp_path)[:3] == ["shapes", "digits", "coins"]


@pytest.mark.parametrize("name, C, sizes, K", [
    ("shapes", 3, {"train": 1000, "val": 200, "test": 200}, 5),
    ("digits", 1, {"train": 1000, "val": 200, "test": 200}, 11),
    ("coins", 1, {"train": 147, "val": 42, "test": 42}, 2),
])
def test_builtin_shapes_dtypes_and_metadata(cache, name, C, sizes, K):
    for split, n in sizes.items():
        ds = data.load_dataset(name, split, root=cache)
        assert ds.images.shape == (n, C, 64, 64) and ds.images.dtype == np.float32
        assert ds.labels.shape == (n, 64, 64) and ds.labels.dtype == np.int64
        assert ds.instances.shape == (n, 64, 64) and ds.instances.dtype == np.int32
        assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
        assert len(ds.class_names) == K == ds.num_classes and ds.palette.shape == (K, 3)
        assert ds.things == (False,) + (True,) * (K - 1)
        assert ds.ignore_index == 255 and ds.name == name and ds.split == split and len(ds) == n
        values = set(np.unique(ds.labels).tolist())
        assert values <= set(range(K)) | {255} and 255 in values and len(values) == K + 1


@pytest.mark.parametrize("name", ["shapes", "digits", "coins"])
def test_builtin_instances_are_panoptic(cache, name):
    """Stuff (background) has instance 0, every thing pixel an id >= 1, ids 1..k per image."""
    ds = data.load_dataset(name, "val", root=cache)
    thing = (ds.labels != 255) & np.asarray(ds.things)[np.minimum(ds.labels, ds.num_classes - 1)]
    assert np.all(ds.instances[thing] >= 1)
    assert np.all(ds.instances[~thing] == 0)
    for inst, lab in zip(ds.instances[:50], ds.labels[:50]):
        ids = np.unique(inst[inst > 0])
        assert ids.tolist() == list(range(1, ids.size + 1))
        for i in ids:                                    # one class per instance
            assert np.unique(lab[inst == i]).size == 1


def test_cache_is_reused_not_regenerated(cache, monkeypatch):
    def boom(seed):
        raise AssertionError("regenerated a cached dataset")

    spec = data.BUILTINS["shapes"]
    monkeypatch.setitem(data.BUILTINS, "shapes", registry.Builtin(**{**spec.__dict__, "make": boom}))
    assert data.load_dataset("shapes", "test", root=cache).images.shape[0] == 200


def test_cache_follows_minseg_data_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MINSEG_DATA", str(tmp_path / "here"))
    assert data.data_home() == tmp_path / "here"
    path = data.prepare_builtin("coins")
    assert path == tmp_path / "here" / "coins-seed0" and (path / "meta.json").is_file()
    assert data.load_dataset("coins", "val").images.shape == (42, 1, 64, 64)
    monkeypatch.delenv("MINSEG_DATA")
    assert data.data_home() == Path.home() / ".cache" / "minseg"
    assert (path.stat().st_mode & 0o777) != 0o700            # not private like a bare mkdtemp


def test_stale_generator_version_is_remade(tmp_path):
    path = data.prepare_builtin("coins", root=tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    meta["version"] = -1
    (path / "meta.json").write_text(json.dumps(meta))
    data.prepare_builtin("coins", root=tmp_path)
    assert json.loads((path / "meta.json").read_text())["version"] == data.BUILTINS["coins"].version


def test_same_seed_same_data_and_other_seed_other_data(tmp_path):
    a = data.make_shapes(12, seed=[5, 0])
    b = data.make_shapes(12, seed=[5, 0])
    c = data.make_shapes(12, seed=[6, 0])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    d1 = data.make_digits(6, seed=1)
    d2 = data.make_digits(6, seed=1)
    np.testing.assert_array_equal(d1[0], d2[0])
    assert not np.array_equal(d1[0], data.make_digits(6, seed=2)[0])


def test_builtin_seed_is_part_of_the_cache_and_round_trips(cache):
    written = data.make_shapes(1000, seed=[0, 0])[1]          # the train split of seed 0
    np.testing.assert_array_equal(data.load_dataset("shapes", "train", root=cache).labels, written)
    assert data.builtin_path("shapes", 3, cache) == cache / "shapes-seed3"


def test_coins_is_read_from_the_bundled_file_without_network(monkeypatch):
    import skimage

    from minseg.data import photo

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    photo_ = photo.coins_photo()
    assert photo_.shape == (303, 384) and photo_.dtype == np.uint8
    inst = photo.coins_mask(photo_)
    assert inst.max() == 24                                  # the 24 coins of the photograph
    areas = np.bincount(inst.ravel())[1:]
    assert areas.min() > 900                                 # whole coins, not specks
    assert photo_[inst > 0].mean() > photo_[inst == 0].mean() + 60   # coins are brighter than the ground
    assert Path(skimage.__file__).parent in (photo._skimage_data_dir() / "coins.png").parents


def test_digits_classification_shares_the_split(cache):
    tr = data.load_digits_classification("train")
    te = data.load_digits_classification("test")
    assert tr.images.shape[1:] == (1, 32, 32) and tr.images.dtype == np.float32
    assert tr.targets.dtype == np.int64 and set(np.unique(tr.targets)) == set(range(10))
    assert len(tr.targets) + len(te.targets) + len(data.load_digits_classification("val").targets) == 1797
    assert tr.class_names == tuple(str(d) for d in range(10))
    parts = data.synthetic.digits_source_split(1797, 0)
    assert not set(parts["train"]) & set(parts["test"])
    assert data.load_digits_classification("train", size=8).images.shape[2:] == (8, 8)
    with pytest.raises(ValueError, match="load_digits_classification: expected split"):
        data.load_digits_classification("dev")


# --------------------------------------------------------------------------- the format

def test_write_then_read_round_trip(tmp_path):
    splits = _tiny_splits()
    path = data.write_dataset(tmp_path / "tiny", _tiny_meta(), splits)
    meta = data.read_meta(path)
    assert meta["splits"] == {"train": 3, "val": 1} and meta["format"] == "minseg-dataset"
    ds = data.load_dataset(path, "train")
    np.testing.assert_array_equal(ds.images, splits["train"][0].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.labels, splits["train"][1])
    np.testing.assert_array_equal(ds.instances, splits["train"][2])
    with np.load(path / "train.npz") as z:                   # stored small
        assert z["images"].dtype == np.uint8 and z["labels"].dtype == np.uint8
    assert set(data.load_splits(path)) == {"train", "val"}
    assert _leftovers(tmp_path) == []


def test_float_images_are_kept(tmp_path):
    images, labels, instances = _tiny_splits()["train"]
    images = images.astype(np.float32) / 255
    path = data.write_dataset(tmp_path / "f", _tiny_meta(), {"train": (images, labels, instances)})
    np.testing.assert_array_equal(data.load_dataset(path).images, images)


def test_prepared_dataset_is_found_by_name_in_the_cache(tmp_path):
    data.write_dataset(tmp_path / "mine", _tiny_meta(), _tiny_splits())
    assert "mine" in data.list_datasets(root=tmp_path)
    assert data.load_dataset("mine", "val", root=tmp_path).name == "tiny"


def test_write_refuses_to_clobber_and_overwrites_atomically(tmp_path):
    path = data.write_dataset(tmp_path / "tiny", _tiny_meta(), _tiny_splits())
    with pytest.raises(FileExistsError, match="tiny"):
        data.write_dataset(path, _tiny_meta(), _tiny_splits())
    data.write_dataset(path, _tiny_meta(), {"test": _tiny_splits()["val"]}, overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "test.npz"]
    assert _leftovers(tmp_path) == []


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def fail_second(file, **arrays):
        calls.append(file)
        if len(calls) == 2:
            raise OSError("disk full")
        np.savez(file, **arrays)

    monkeypatch.setattr(formats.np, "savez_compressed", fail_second)
    with pytest.raises(OSError, match="disk full"):
        data.write_dataset(tmp_path / "tiny", _tiny_meta(), _tiny_splits())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, match", [
    (lambda s: s["train"][1].__setitem__((0, 1, 1), 7), r"labels in 0\.\.2 or ignore_index=255, got values \[7\]"),
    (lambda s: s.__setitem__("train", (s["train"][0], s["train"][1][:, :2], s["train"][2])),
     r"expected labels of shape \(N, H, W\)"),
])
def test_write_rejects_bad_arrays(tmp_path, change, match):
    splits = _tiny_splits()
    change(splits)
    with pytest.raises(ValueError, match=match):
        data.write_dataset(tmp_path / "tiny", _tiny_meta(), splits)
    assert list(tmp_path.iterdir()) == []


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.load_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="neither a built-in dataset"):
        data.load_dataset("no-such-set", root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/meta\.json"):
        data.load_dataset(tmp_path / "empty")

    path = data.write_dataset(tmp_path / "tiny", _tiny_meta(), _tiny_splits())
    with pytest.raises(ValueError, match=r"expected split to be one of \['train', 'val'\].*got 'test'"):
        data.load_dataset(path, "test")
    (path / "val.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match=r"val\.npz' is corrupt"):
        data.load_dataset(path, "val")
    (path / "val.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"val\.npz"):
        data.load_dataset(path, "val")
    np.savez(path / "train.npz", images=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"train\.npz' lacks arrays \['labels', 'instances'\]"):
        data.load_dataset(path, "train")
    (path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"meta\.json' is not valid JSON"):
        data.load_dataset(path)
    (path / "meta.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match=r"meta\.json: missing keys"):
        data.load_dataset(path)
    with pytest.raises(TypeError, match="expected name_or_path"):
        data.load_dataset(3)


# --------------------------------------------------------------------------- batches

def _small_dataset(n=10):
    images, labels, instances = data.make_shapes(n, seed=1, size=32)
    return data.Dataset(images.astype(np.float32) / 255, labels.astype(np.int64), instances.astype(np.int32),
                        data.SHAPES_CLASSES, data.make_palette(5), (False, True, True, True, True), 255,
                        "shapes", "train")


def test_batches_visit_every_sample_once_in_a_seeded_order():
    ds = _small_dataset(10)
    it = data.batches(ds, 4, seed=3)
    assert len(it) == 3
    got = [b.index for b in it]
    assert [len(i) for i in got] == [4, 4, 2]
    assert sorted(np.concatenate(got).tolist()) == list(range(10))
    again = [b.index for b in data.batches(ds, 4, seed=3)]
    assert all(np.array_equal(a, b) for a, b in zip(got, again))
    other = np.concatenate([b.index for b in data.batches(ds, 4, seed=4)])
    assert not np.array_equal(np.concatenate(got), other)
    first = next(iter(it))
    np.testing.assert_array_equal(first.images, ds.images[first.index])
    np.testing.assert_array_equal(first.labels, ds.labels[first.index])
    assert len(data.batches(ds, 4, drop_last=True)) == 2
    in_order = np.concatenate([b.index for b in data.batches(ds, 3, shuffle=False)])
    assert in_order.tolist() == list(range(10))


def test_batches_apply_a_seeded_transform():
    ds = _small_dataset(6)
    augment = data.Compose([data.RandomScale((0.8, 1.3)), data.RandomCrop(24), data.RandomFlip()])
    a = list(data.batches(ds, 3, seed=0, transform=augment))
    b = list(data.batches(ds, 3, seed=0, transform=augment))
    assert a[0].images.shape == (3, 3, 24, 24) and a[0].labels.shape == (3, 24, 24)
    assert a[0].images.dtype == np.float32 and a[0].labels.dtype == np.int64 and a[0].instances.dtype == np.int32
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.images, y.images)
        np.testing.assert_array_equal(x.labels, y.labels)


def test_batches_errors():
    ds = _small_dataset(4)
    with pytest.raises(ValueError, match="batches: expected batch_size to be an int >= 1, got 0"):
        data.batches(ds, 0)
    with pytest.raises(TypeError, match="batches: expected dataset to be a minseg.data.Dataset"):
        data.batches(ds.images, 2)
    with pytest.raises(ValueError, match="different shapes .* RandomCrop"):
        list(data.batches(ds, 4, transform=data.RandomScale((0.5, 1.5))))


# --------------------------------------------------------------------------- dependencies

def test_import_needs_only_numpy(tmp_path):
    """``import minseg.data`` and ``minseg.viz`` work with matplotlib, sklearn, skimage, PIL, tqdm absent."""
    script = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"matplotlib", "sklearn", "skimage", "PIL", "tqdm", "scipy", "tifffile"}:
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        import minseg.data, minseg.viz
        from minseg.data import formats
        assert list(formats.progress([1, 2])) == [1, 2]
        for call in (lambda: minseg.data.load_digits_classification(),
                     lambda: minseg.viz.show_grid([[[0.0]]]),
                     lambda: minseg.data.photo.coins_photo()):
            try:
                call()
            except ImportError as err:
                assert "minseg[lessons]" in str(err), err
            else:
                raise AssertionError("no ImportError")
        print("ok")
    """)
    env = {**os.environ, "MINSEG_DATA": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
