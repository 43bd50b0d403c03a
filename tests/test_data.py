import json

import pytest

from conftest import write_imagefolder
from glov.data import DataError, get_dataset_spec, list_datasets, prepare
from glov.data.splits import SplitError


def manifest_for(root, **kw):
    args = dict(shots=1, val_per_class=2, test_per_class=3, seed=0, custom={"toy": {"layout": "imagefolder", "path": str(root), "description": "toy"}})
    args.update(kw)
    return prepare("toy", root.parent, **args)


def test_imagefolder_splits_are_deterministic_disjoint_and_sized(tmp_path):
    root = write_imagefolder(tmp_path / "toy", {"red_fox": 8, "cat": 8})
    m = manifest_for(root)
    assert m["classnames"] == ["cat", "red fox"]  # sorted folders, underscores become spaces
    sizes = {k: len(v) for k, v in m["splits"].items()}
    assert sizes == {"train": 2, "val": 4, "test": 6}
    paths = [p for split in m["splits"].values() for p, _ in split]
    assert len(paths) == len(set(paths))  # no image in two splits
    assert manifest_for(root) == m  # same seed, same splits
    assert manifest_for(root, seed=1)["splits"] != m["splits"]


def test_splits_do_not_depend_on_listing_order(tmp_path):
    root = write_imagefolder(tmp_path / "toy", {"a": 6, "b": 6})
    first = manifest_for(root)
    # renaming files changes the order of iterdir but sorted()+seeded shuffle gives the same result
    for p in sorted((root / "a").iterdir(), reverse=True):
        p.rename(p.with_name("z" + p.name))
        p.with_name("z" + p.name).rename(p)
    assert manifest_for(root) == first


def test_missing_dataset_names_path_and_fix(tmp_path):
    with pytest.raises(DataError) as err:
        prepare("oxford_pets", tmp_path, 1, 1, 1, 0)
    msg = str(err.value)
    assert str(tmp_path / "oxford_pets") in msg and "split_zhou_OxfordPets.json" in msg and "CoOp" in msg
    with pytest.raises(DataError, match="rule export_bundled_dataset"):
        prepare("animal_mnist", tmp_path, 1, 1, 1, 0)


def test_empty_class_folder_and_too_few_images_are_reported(tmp_path):
    root = write_imagefolder(tmp_path / "toy", {"a": 5})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no images"):
        manifest_for(root)
    (root / "empty").rmdir()
    with pytest.raises(SplitError, match="class 'a' has 5 training image"):
        manifest_for(root, val_per_class=5)


def test_coop_json_layout(tmp_path):
    root = tmp_path / "oxford_pets"
    write_imagefolder(root / "images", {"x": 1})
    split = {s: [[f"img_{s}_{i}_{c}.jpg", c, ["abyssinian", "basset_hound"][c]] for c in (0, 1) for i in range(3)] for s in ("train", "val", "test")}
    (root / "split_zhou_OxfordPets.json").write_text(json.dumps(split))
    m = prepare("oxford_pets", tmp_path, 2, 1, None, 0)
    assert m["classnames"] == ["abyssinian", "basset hound"]
    assert {k: len(v) for k, v in m["splits"].items()} == {"train": 4, "val": 2, "test": 6}
    assert all(p.startswith("img_train") for p, _ in m["splits"]["train"])
    assert all(p.startswith("img_test") for p, _ in m["splits"]["test"])


def test_class_names_that_clash_after_normalisation_are_refused_naming_the_folders(tmp_path):
    """Issue 29.4: `bear_` and `bear ` both became `bear`; the second class could never be predicted."""
    root = write_imagefolder(tmp_path / "toy", {"bear_": 3, "bear ": 3, "a_b c": 3, "__": 3})
    with pytest.raises(DataError) as err:
        manifest_for(root, val_per_class=1, test_per_class=1)
    message = str(err.value)
    assert message.startswith(f"image folder {root}: ")
    assert "'bear ' and 'bear_' both become the class name 'bear'" in message
    assert "'__' becomes an empty class name" in message and "a_b c" not in message
    assert "Fix: rename one folder of each pair" in message
    (root / "__").rename(root / "b_e_a_r")
    (root / "bear ").rename(root / "black_bear")
    assert manifest_for(root, val_per_class=1, test_per_class=1)["classnames"] == ["a b c", "b e a r", "bear", "black bear"]


def test_coop_split_file_with_two_labels_of_one_class_name_is_refused(tmp_path):
    root = tmp_path / "oxford_pets"
    write_imagefolder(root / "images", {"x": 1})
    names = ["basset_hound", "basset hound"]
    split = {s: [[f"img_{s}_{i}_{c}.jpg", c, names[c]] for c in (0, 1) for i in range(3)] for s in ("train", "val", "test")}
    (root / "split_zhou_OxfordPets.json").write_text(json.dumps(split))
    with pytest.raises(DataError, match=r"split_zhou_OxfordPets.json: 'basset_hound' and 'basset hound' both become the class "
                                        r"name 'basset hound'. Fix: give each label its own class name"):
        prepare("oxford_pets", tmp_path, 2, 1, None, 0)


def test_registry_lists_paper_datasets_and_names_unknown():
    assert {"imagenet", "eurosat", "dtd", "oxford_pets", "animal_mnist", "resisc45"} <= set(list_datasets())
    assert len(list_datasets()) == 20  # the paper's 16 and the four lab tasks
    with pytest.raises(DataError, match="known: "):
        get_dataset_spec("imagenet-typo")


def fake_imagenet(root):
    (root / "imagenet").mkdir(parents=True)
    (root / "imagenet" / "classnames.txt").write_text("n01 goldfish\nn02 great white shark\nn03 tench\n")
    for split, n in (("train", 4), ("val", 2)):
        for wnid in ("n01", "n02", "n03"):
            write_imagefolder(root / "imagenet" / "images" / split, {wnid: n})


def test_imagenet_layout_uses_train_for_fitness_and_val_folder_as_test(tmp_path):
    fake_imagenet(tmp_path)
    m = prepare("imagenet", tmp_path, 1, 2, None, 0)
    assert m["classnames"] == ["goldfish", "great white shark", "tench"]
    assert all(p.startswith("train/") for s in ("train", "val") for p, _ in m["splits"][s])
    assert len(m["splits"]["test"]) == 6 and all(p.startswith("val/") for p, _ in m["splits"]["test"])


def test_imagenet_variant_tests_on_its_folders_and_trains_on_imagenet(tmp_path):
    fake_imagenet(tmp_path)
    write_imagefolder(tmp_path / "imagenet-rendition" / "imagenet-r", {"n03": 2, "n01": 3})  # a class subset
    write_imagefolder(tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val", {"1": 2})  # label indices
    m = prepare("imagenet_r", tmp_path, 1, 1, None, 0)
    assert m["classnames"] == ["goldfish", "tench"]
    assert [y for _, y in m["splits"]["test"]] == [0, 0, 0, 1, 1]
    root = tmp_path / "imagenet-rendition"
    assert all((root / p).exists() for s in m["splits"].values() for p, _ in s)
    assert prepare("imagenetv2", tmp_path, 1, 1, None, 0)["classnames"] == ["great white shark"]


def test_aircraft_layout(tmp_path):
    data = tmp_path / "fgvc_aircraft" / "data"
    (data / "images").mkdir(parents=True)
    (data / "variants.txt").write_text("707-320\nA300B4\n")
    for split, ids in (("train", "11 12 13 14"), ("val", "21 22"), ("test", "31 32")):
        lines = [f"{i} {'707-320' if k % 2 == 0 else 'A300B4'}" for k, i in enumerate(ids.split())]
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    m = prepare("fgvc_aircraft", tmp_path, 1, 1, None, 0)
    assert m["classnames"] == ["707-320", "A300B4"]
    assert {k: len(v) for k, v in m["splits"].items()} == {"train": 2, "val": 2, "test": 2}
    assert sorted(p for p, _ in m["splits"]["test"]) == ["31.jpg", "32.jpg"]


def test_prep_names_every_unreadable_image_at_once_and_the_listing_tracks_the_folder(tmp_path):
    """An empty file and a corrupt one: one error names both, before anything is embedded. Deleting
    them changes the listing hash that prep_dataset declares as a param (so Snakemake re-runs it);
    copying the folder or touching a file does not."""
    import os

    from glov import config as C
    from glov.data.integrity import listing_digest
    from glov.jobs.data import prepare_dataset

    root = write_imagefolder(tmp_path / "pets", {"cat": 4, "dog": 4})
    (root / "cat/000.png").write_bytes(b"")
    (root / "dog/001.png").write_bytes(b"not a png at all")
    custom = {"pets": {"layout": "imagefolder", "path": str(root), "description": "pets"}}
    params = C.from_dict({"data": {"datasets": ["pets"], "val_per_class": 1, "test_per_class": 2, "custom": custom},
                          "tracking": {"mlflow": False}})
    spec = get_dataset_spec("pets", custom)
    before = listing_digest(spec, ".")
    with pytest.raises(DataError) as err:
        prepare_dataset(params, "pets", tmp_path / "manifest.json")
    message = str(err.value)
    assert "2 of the 8 images of dataset 'pets' cannot be read" in message
    assert f"{root / 'cat/000.png'}:" in message and f"{root / 'dog/001.png'}:" in message
    assert "delete or replace them, then run snakemake again" in message
    assert not (tmp_path / "manifest.json").exists()

    os.utime(root / "cat/001.png", (0, 0))
    assert listing_digest(spec, ".") == before  # touched, not changed
    (root / "cat/000.png").unlink()
    (root / "dog/001.png").unlink()
    assert listing_digest(spec, ".") != before
    prepare_dataset(params, "pets", tmp_path / "manifest.json")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sum(len(v) for v in manifest["splits"].values()) == 6
    assert listing_digest(get_dataset_spec("animal_mnist"), ".") == ""  # bundled: written by the workflow itself


def _png_header(path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` grey pixels (its header only): what a decompression bomb shows PIL."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_named_in_the_unreadable_images_report(tmp_path):
    """Issue 29.10: PIL's DecompressionBombError (a plain Exception) escaped the report. It is reported
    with the other bad images; PIL's limit itself is kept."""
    from PIL import Image

    from glov.data.integrity import check_manifest_images

    root = write_imagefolder(tmp_path / "pets", {"cat": 3, "dog": 3})
    _png_header(root / "cat/001.png", 30_000, 30_000)  # 9e8 pixels: over twice PIL's limit
    (root / "dog/002.png").write_bytes(b"not a png at all")
    m = manifest_for(root, val_per_class=1, test_per_class=1)
    with pytest.raises(DataError) as err:
        check_manifest_images(m, relists=True, threads=2)
    message = str(err.value)
    assert "2 of the 6 images of dataset 'toy' cannot be read" in message
    assert f"{root / 'cat/001.png'}: DecompressionBombError: Image size (900000000 pixels) exceeds limit" in message
    assert f"{root / 'dog/002.png'}: " in message
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # not switched off
    from glov.vlm import open_image

    with pytest.raises(DataError, match=f"image {root / 'cat/001.png'} is corrupt or not an image .*decompression bomb"):
        open_image(root / "cat/001.png")  # embedding, should an image change after prep


def test_an_interrupted_lab_task_export_leaves_nothing_and_a_partial_folder_is_refused(tmp_path, monkeypatch):
    """Issue 29 item 2, the exported lab tasks: the export is built under a temporary name and renamed
    into place with its record; a stopped export leaves nothing at the task's path, and a folder
    without the record (as older code left after a kill) is refused with the command that rebuilds it."""
    from pathlib import Path

    import glov.data.sources as sources
    from glov import config as C
    from glov.data import EXPORT_RECORD, load_pools
    from glov.jobs.data import export_bundled_dataset

    params = C.from_dict({"data": {"root": str(tmp_path)}, "tracking": {"mlflow": False}})
    spec = get_dataset_spec("animal_mnist")
    target = spec.location(tmp_path)

    def stop_after_some(source, out_dir, per_class=None):
        write_imagefolder(Path(out_dir), {"bear": 2})  # some images written, then the job is killed
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "export_task", stop_after_some)
    with pytest.raises(KeyboardInterrupt):
        export_bundled_dataset(params, "animal_mnist", target)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_imagefolder(target, {"bear": 2, "cat": 2})  # a folder that looks complete, without its record
    with pytest.raises(DataError, match=r"never finished .*snakemake --cores all"):
        load_pools(spec, tmp_path)
    (target / EXPORT_RECORD).write_text("{}")
    assert load_pools(spec, tmp_path).classnames == ["bear", "cat"]
