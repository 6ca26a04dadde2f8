"""Which files a path names: directories in sorted order, hidden entries and ConfigMap volume internals
skipped, each file once, missing and unreadable paths reported, symlink loops skipped."""

from __future__ import annotations

from pathlib import Path

from controlplane.resources.problems import Severity
from controlplane.sources.file_reading import FileLimits, load_file, load_paths
from controlplane.sources.files import FileSource


def _config_map(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"


def test_directory_is_read_recursively_in_sorted_order_skipping_hidden(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b.yaml").write_text(_config_map("b"))
    (tmp_path / "a.yml").write_text(_config_map("a"))
    (tmp_path / "sub" / "c.yaml").write_text(_config_map("c"))
    (tmp_path / ".git" / "d.yaml").write_text(_config_map("d"))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    result = load_paths([tmp_path, tmp_path / "b.yaml"])
    assert result.problems == []
    assert [(Path(o.file or "").name, o.object.name) for o in result.objects] == [
        ("a.yml", "a"),
        ("b.yaml", "b"),
        ("c.yaml", "c"),
    ]


def test_a_folders_files_come_where_its_name_sorts_and_symlinked_folders_are_not_entered(
    tmp_path: Path,
) -> None:
    for folder in ("b/inner", "d", "outside"):
        (tmp_path / "root" / folder).mkdir(parents=True)
    for name in ("a.yaml", "b/inner/x.yaml", "b/y.yaml", "c.yaml", "d/z.yaml", "e.yaml", "outside/v.yaml"):
        (tmp_path / "root" / name).write_text(_config_map(Path(name).stem))
    (tmp_path / "root" / "outside").rename(tmp_path / "outside")
    (tmp_path / "root" / "bb").symlink_to(tmp_path / "outside", target_is_directory=True)
    result = load_paths([tmp_path / "root"])
    assert result.problems == []
    assert [o.object.name for o in result.objects] == ["a", "x", "y", "c", "z", "e"]


def test_configmap_volume_is_read_once_through_its_visible_names(tmp_path: Path) -> None:
    """A mounted ConfigMap: the data in a timestamped folder, ``..data`` pointing at it, and each key a
    symlink through ``..data``. Only the visible names are read, so nothing is a duplicate."""
    volume = tmp_path / "volume"
    stamped = volume / "..2024_01_01_00_00_00.123"
    stamped.mkdir(parents=True)
    (stamped / "routes.yaml").write_text(_config_map("routes"))
    (volume / "..data").symlink_to(stamped.name)
    (volume / "routes.yaml").symlink_to(Path("..data") / "routes.yaml")
    result = load_paths([volume])
    assert result.problems == []
    assert [(o.file, o.object.name) for o in result.objects] == [(str(volume / "routes.yaml"), "routes")]


def test_missing_and_unreadable_paths_are_reported(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = load_paths([tmp_path / "absent.yaml", binary])
    assert sorted(p.format() for p in result.problems) == [
        f"{tmp_path / 'absent.yaml'}:-: -: -: no such file or directory",
        f"{binary}:-: -: -: cannot read file: not UTF-8 text",
    ]


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "small.yaml").write_text(_config_map("small"))
    big = tmp_path / "big.yaml"
    big.write_text(_config_map("big") + "# " + "x" * 200 + "\n")
    result = load_paths([tmp_path], limits=FileLimits(max_file_bytes=200))
    assert [o.object.name for o in result.objects] == ["small"]
    assert [p.format() for p in result.problems] == [
        f"{big}:-: -: -: cannot read file: {big.stat().st_size} bytes, over the limit of 200 "
        "(--max-file-bytes)"
    ]


def test_a_file_holding_more_than_its_stated_size_is_read_to_the_end_and_never_past_the_limit() -> None:
    # A /proc file states size 0 (so would a file grown since its size was read): what it holds counts.
    status = Path("/proc/self/status")
    assert [p.message for p in load_file(status, max_bytes=10).problems] == [
        "cannot read file: 11 bytes, over the limit of 10 (--max-file-bytes)"
    ]
    read = load_file(status, max_bytes=1_000_000)
    assert read.problems
    assert not any("cannot read file" in p.message for p in read.problems)


def test_a_load_over_the_object_limit_is_refused_whole(tmp_path: Path) -> None:
    (tmp_path / "maps.yaml").write_text("---\n".join(_config_map(f"m{i}") for i in range(4)))
    assert len(load_paths([tmp_path], limits=FileLimits(max_objects=4)).objects) == 4
    result = load_paths([tmp_path], limits=FileLimits(max_objects=3))
    assert result.objects == []
    assert [p.format() for p in result.problems] == [
        "-:-: -: -: 4 objects, over the limit of 3 (--max-objects): none of this load is used"
    ]


def test_the_file_source_keeps_serving_its_last_load_within_the_limits(tmp_path: Path) -> None:
    maps = tmp_path / "maps.yaml"
    maps.write_text(_config_map("a"))
    source = FileSource([tmp_path], limits=FileLimits(max_objects=2, max_file_bytes=1000))
    assert [o.object.name for o in source.load().objects] == ["a"]
    maps.write_text(_config_map("b") + "#" * 1000)
    too_big = source.load()
    assert [o.object.name for o in too_big.objects] == ["a"]
    assert [p.severity for p in too_big.problems] == [Severity.ERROR, Severity.WARNING]
    assert "over the limit of 1000 (--max-file-bytes)" in too_big.problems[0].message
    maps.write_text("---\n".join(_config_map(n) for n in "abc"))
    too_many = source.load()
    assert [o.object.name for o in too_many.objects] == ["a"]
    assert [p.message for p in too_many.problems] == [
        "3 objects, over the limit of 2 (--max-objects): none of this load is used; "
        "the last load (1 objects) serves"
    ]


def test_a_symlink_loop_in_a_folder_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_config_map("a"))
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    (tmp_path / "there.yaml").symlink_to("back.yaml")
    (tmp_path / "back.yaml").symlink_to("there.yaml")
    result = load_paths([tmp_path])
    assert result.problems == []
    assert [o.object.name for o in result.objects] == ["a"]
