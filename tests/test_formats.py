"""Dataset formats, the common index and its cache, on tiny trees of generated videos (and the real HMDB51 subset)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from conftest import SHARED, moving_square_frames

from vidlearn.data import index as index_module
from vidlearn.data.formats import (
    detect_format,
    hmdb51_action,
    load_csv,
    load_dataset,
    load_hmdb51,
    load_kinetics,
    load_ssv2,
    load_ucf101,
)
from vidlearn.data.index import DatasetSource, IndexEntry, VideoIndex, cache_dir, cache_file, scan
from vidlearn.errors import AnnotationError, BadArgumentError
from vidlearn.io import write_video

FRAMES, FPS = 8, 10.0  # the generated clip: 8 frames of 32 x 32 at 10 fps, so 0.8 s long
HMDB51_SUBSET = SHARED / "datasets" / "hmdb51_subset"


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """One good 8-frame clip, a one-frame clip, and the bad files a real dataset folder holds."""
    folder = tmp_path_factory.mktemp("source-videos")
    clip = write_video(folder / "clip.mp4", moving_square_frames(FRAMES, 32, 32), FPS)
    still = write_video(folder / "still.mp4", moving_square_frames(1, 32, 32), FPS)
    empty = folder / "empty.mp4"
    empty.touch()
    text = folder / "text.mp4"
    text.write_text("this is not a video\n")
    return {"clip": clip, "still": still, "empty": empty, "text": text}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Each test gets its own empty index cache, never the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("VIDLEARN_CACHE", str(folder))
    return folder


@pytest.fixture
def probe_calls(monkeypatch) -> list[str]:
    """Paths passed to ``probe`` by the scan (which runs it on worker threads)."""
    calls, lock, real_probe = [], threading.Lock(), index_module.probe

    def counting_probe(path):
        with lock:
            calls.append(str(path))
        return real_probe(path)

    monkeypatch.setattr(index_module, "probe", counting_probe)
    return calls


def put(source: Path, destination: Path) -> Path:
    """A copy (its own inode and mtime, so touching it affects no other file)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return destination


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(path, **kwargs) -> VideoIndex:
    return load_dataset(path, progress=False, **kwargs)


def by_name(index: VideoIndex) -> dict[str, IndexEntry]:
    return {Path(entry.path).name: entry for entry in index.entries}


def skipped_by_name(index: VideoIndex) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in index.skipped}


# Folder per class -------------------------------------------------------------------------


def test_folder_per_class_sorted_classes_probed_frames_and_bad_files_skipped(tmp_path, videos):
    root = tmp_path / "data"
    put(videos["clip"], root / "walk" / "a.mp4")
    put(videos["clip"], root / "walk" / "b.MKV")  # extension case does not matter; content decides decoding
    put(videos["clip"], root / "Run" / "c.mp4")
    put(videos["clip"], root / "jump" / "d.webm")
    put(videos["empty"], root / "jump" / "zero.mp4")
    put(videos["text"], root / "jump" / "text.mp4")
    put(videos["still"], root / "jump" / "still.mp4")
    write(root / "jump" / "notes.txt", "not a video")
    write(root / "docs" / "README.md", "a folder without videos is no class")

    assert detect_format(root) == "folder"
    index = load(root)

    assert index.class_names == ["Run", "jump", "walk"]  # plain sorted order, as the format promises
    assert index.source == DatasetSource("folder", str(root))
    assert {name: (e.label, e.frames, e.fps) for name, e in by_name(index).items()} == {
        "a.mp4": (2, FRAMES, FPS),
        "b.MKV": (2, FRAMES, FPS),
        "c.mp4": (0, FRAMES, FPS),
        "d.webm": (1, FRAMES, FPS),
    }
    assert all(Path(entry.path).is_absolute() for entry in index)
    skipped = skipped_by_name(index)
    assert set(skipped) == {"zero.mp4", "text.mp4", "still.mp4"}
    assert all(skipped.values())
    assert skipped["still.mp4"] == "1 frame(s), fewer than min_frames=2"
    assert index.class_counts() == {"Run": 1, "jump": 1, "walk": 2}

    table = index.skipped_table()
    assert table.splitlines()[0] == "skipped 3 file(s):"
    assert "min_frames=2" in table and len(table.splitlines()) == 5  # title, column names, one row per reason

    one_frame_is_enough = load(root, min_frames=1)
    assert "still.mp4" in by_name(one_frame_is_enough)
    assert by_name(one_frame_is_enough)["still.mp4"].frames == 1


def test_index_helpers(tmp_path):
    index = VideoIndex(
        [
            IndexEntry("/v/a.mp4", 0),
            IndexEntry("/v/b.mp4", 2),
            IndexEntry("/v/c.mp4", 2),
            IndexEntry("/v/d.mp4"),
        ],
        ["x", "y", "z"],
        DatasetSource("folder", "/v"),
        [("/v/e.mp4", "file does not exist")],
    )
    assert index.class_counts() == {"x": 1, "y": 0, "z": 2}
    only_z = index.filter(lambda entry: entry.label == 2)
    assert [Path(e.path).name for e in only_z] == ["b.mp4", "c.mp4"]
    assert only_z.class_names == index.class_names and only_z.skipped == index.skipped
    assert len(index) == 4 and index[0].path == "/v/a.mp4"
    assert VideoIndex([], ["x"], DatasetSource("folder", "/v")).skipped_table() == "no files skipped"


# UCF101 and SynthActions ------------------------------------------------------------------


def make_ucf101(root: Path, videos) -> Path:
    # classInd lines out of order: the numbers, not the line order nor the alphabet, decide labels.
    write(root / "ucfTrainTestlist" / "classInd.txt", "2 ApplyEyeMakeup\r\n1 Basketball\r\n3 Archery\r\n\r\n")
    write(
        root / "ucfTrainTestlist" / "trainlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\nBasketball/v_Basketball_g08_c01.avi 1\n"
        "Archery/v_Archery_g08_c01.avi 3\nArchery/v_Archery_g09_c01.avi 3\n",
    )
    write(
        root / "ucfTrainTestlist" / "testlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nArchery/v_Archery_g01_c01.avi\n",
    )
    for name in [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "Basketball/v_Basketball_g08_c01.avi",
        "Archery/v_Archery_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "Archery/v_Archery_g01_c01.avi",
    ]:  # v_Archery_g09_c01.avi is listed but missing
        put(videos["clip"], root / name)
    return root


def test_ucf101_train_and_test_lists(tmp_path, videos):
    root = make_ucf101(tmp_path / "UCF-101", videos)
    assert detect_format(root) == "ucf101"

    train = load(root)
    assert train.class_names == ["Basketball", "ApplyEyeMakeup", "Archery"]
    assert {name: e.label for name, e in by_name(train).items()} == {
        "v_ApplyEyeMakeup_g08_c01.avi": 1,
        "v_Basketball_g08_c01.avi": 0,
        "v_Archery_g08_c01.avi": 2,
    }
    assert skipped_by_name(train) == {"v_Archery_g09_c01.avi": "file does not exist"}

    test = load(root, subset="test")
    assert {name: e.label for name, e in by_name(test).items()} == {
        "v_ApplyEyeMakeup_g01_c01.avi": 1,  # from the folder, through classInd
        "v_Archery_g01_c01.avi": 2,
    }
    assert test.skipped == []

    with pytest.raises(AnnotationError, match="testlist02.txt: file not found"):
        load(root, split=2, subset="test")
    with pytest.raises(BadArgumentError, match="UCF101 has no subset 'val'"):
        load(root, subset="val")


def test_ucf101_explicit_split_folder_and_no_scan(tmp_path, videos):
    root = make_ucf101(tmp_path / "UCF-101", videos)
    splits = tmp_path / "lists"
    shutil.move(root / "ucfTrainTestlist", splits)
    index = load_ucf101(root, splits, subset="test")
    assert [e.frames for e in index] == [None, None]  # loaders only read annotations; scan probes
    assert [e.frames for e in scan(index, progress=False)] == [FRAMES, FRAMES]


def make_synthactions(root: Path, videos) -> Path:
    write(root / "synth.json", json.dumps({"version": 1}))
    write(root / "ucfTrainTestlist" / "classInd.txt", "1 MoveLeft\n2 MoveRight\n3 Grow\n")
    write(
        root / "ucfTrainTestlist" / "trainlist01.txt",
        "MoveLeft/MoveLeft_g01_c01.mp4 1\nGrow/Grow_g01_c01.mp4 3\n",
    )
    write(root / "ucfTrainTestlist" / "testlist01.txt", "MoveRight/MoveRight_g02_c01.mp4\n")
    for name in ["MoveLeft/MoveLeft_g01_c01.mp4", "Grow/Grow_g01_c01.mp4", "MoveRight/MoveRight_g02_c01.mp4"]:
        put(videos["clip"], root / "clips" / name)
    write(
        root / "captions.csv",
        'path,label,caption\nMoveLeft/MoveLeft_g01_c01.mp4,MoveLeft,"a red disc moves left, slowly"\n'
        "Grow/Grow_g01_c01.mp4,Grow,a blue square grows\nMoveRight/MoveRight_g02_c01.mp4,MoveRight,a star moves right\n",
    )
    put(videos["clip"], root / "untrimmed" / "untrimmed_0001.mp4")
    write(
        root / "untrimmed" / "segments.csv",
        "video,label,start,end\nuntrimmed_0001.mp4,Grow,0.000000,0.300000\nuntrimmed_0001.mp4,MoveLeft,0.400000,0.700000\n",
    )
    return root


def test_synthactions_folder_is_ucf101_with_captions(tmp_path, videos):
    root = make_synthactions(tmp_path / "synth", videos)
    assert detect_format(root) == "synthactions"

    train = load(root)
    assert train.source.format == "synthactions"
    assert train.class_names == ["MoveLeft", "MoveRight", "Grow"]
    assert {name: (e.label, e.caption) for name, e in by_name(train).items()} == {
        "MoveLeft_g01_c01.mp4": (0, "a red disc moves left, slowly"),
        "Grow_g01_c01.mp4": (2, "a blue square grows"),
    }
    test = load(root, subset="test")
    assert [(e.label, e.caption) for e in test] == [(1, "a star moves right")]


def test_synthactions_untrimmed_segments_use_the_clip_class_list(tmp_path, videos):
    root = make_synthactions(tmp_path / "synth", videos)
    for index in (
        load(root, subset="untrimmed"),
        load(root / "untrimmed"),
        load(root / "untrimmed" / "segments.csv"),
    ):
        assert index.class_names == ["MoveLeft", "MoveRight", "Grow"]  # not sorted: labels match the clips'
        assert [(e.label, e.start, e.end, e.frames) for e in index] == [
            (2, 0.0, 0.3, FRAMES),
            (0, 0.4, 0.7, FRAMES),
        ]


# HMDB51 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "action"),
    [
        ("6arrowswithin30seconds_shoot_bow_f_nm_np1_fr_med_3.avi", "shoot_bow"),
        ("BaseballHitinSlowMotion_swing_baseball_f_nm_np1_fr_bad_0.avi", "swing_baseball"),
        ("Pirates_draw_sword_u_cm_np2_le_goo_1.avi", "draw_sword"),  # not "sword": the longest name wins
        ("Fencing_sword_f_cm_np2_ri_bad_0.avi", "sword"),
        ("sword_exercise_f_nm_np1_fr_goo_4.avi", "sword_exercise"),  # the whole head is the action
        ("Truman_bow_f_nm_np1_fr_med_26.avi", None),  # no class ends the head
        ("RATRACE_wave.avi", None),  # not an HMDB51 name
    ],
)
def test_hmdb51_action_from_file_name(file_name, action):
    names = ["sword", "draw_sword", "shoot_bow", "swing_baseball", "sword_exercise", "wave", "shoot_ball"]
    assert hmdb51_action(file_name, names) == action


def make_hmdb51(root: Path, videos) -> Path:
    files = {
        "shoot_bow": [
            "archery_shoot_bow_f_nm_np1_fr_med_0.avi",
            "archery_shoot_bow_f_nm_np1_fr_med_1.avi",
            "bows_shoot_bow_u_cm_np1_le_goo_2.avi",
        ],
        "wave": ["hello_wave_f_nm_np1_fr_goo_0.avi", "hello_wave_u_nm_np1_ba_bad_1.avi"],
    }
    for action, names in files.items():
        for name in names:
            put(videos["clip"], root / action / name)
    splits = root / "testTrainMulti_7030_splits"
    write(
        splits / "shoot_bow_test_split1.txt",
        "archery_shoot_bow_f_nm_np1_fr_med_0.avi 1 \narchery_shoot_bow_f_nm_np1_fr_med_1.avi 2 \nbows_shoot_bow_u_cm_np1_le_goo_2.avi 0 \n",
    )
    write(
        splits / "wave_test_split1.txt",
        "hello_wave_f_nm_np1_fr_goo_0.avi 2\nhello_wave_u_nm_np1_ba_bad_1.avi 1\n",
    )
    write(
        splits / "wave_test_split2.txt",
        "hello_wave_f_nm_np1_fr_goo_0.avi 1\nhello_wave_u_nm_np1_ba_bad_1.avi 2\n",
    )
    write(splits / "shoot_bow_test_split2.txt", "archery_shoot_bow_f_nm_np1_fr_med_0.avi 2\n")
    return root


def test_hmdb51_split_tags(tmp_path, videos):
    root = make_hmdb51(tmp_path / "hmdb51", videos)
    assert detect_format(root) == "hmdb51"

    train, test = load(root), load(root, subset="test")
    assert train.class_names == ["shoot_bow", "wave"]
    assert {name: e.label for name, e in by_name(train).items()} == {
        "archery_shoot_bow_f_nm_np1_fr_med_0.avi": 0,
        "hello_wave_u_nm_np1_ba_bad_1.avi": 1,
    }
    assert {name: e.label for name, e in by_name(test).items()} == {
        "archery_shoot_bow_f_nm_np1_fr_med_1.avi": 0,
        "hello_wave_f_nm_np1_fr_goo_0.avi": 1,
    }  # tag 0 (unused) is in neither subset
    assert sorted(by_name(load(root, split=2))) == ["hello_wave_f_nm_np1_fr_goo_0.avi"]


def test_hmdb51_class_names_file_order_wins(tmp_path, videos):
    root = make_hmdb51(tmp_path / "hmdb51", videos)
    write(root / "class_names.txt", "wave\nclimb\nshoot_bow")  # no trailing newline, like hmdb51_subset's
    index = load(root, subset="test")
    assert index.class_names == ["wave", "climb", "shoot_bow"]
    assert sorted(e.label for e in index) == [0, 2]


def test_hmdb51_without_split_files_takes_every_video_labels_from_names(tmp_path, videos):
    root = tmp_path / "hmdb"
    write(root / "class_names.txt", "wave\nshoot_bow\nbow\n")
    put(videos["clip"], root / "shoot_bow" / "a_shoot_bow_f_nm_np1_fr_med_0.avi")
    put(
        videos["clip"], root / "misc" / "b_shoot_bow_f_nm_np1_fr_med_1.avi"
    )  # folder is no class: file name decides
    put(videos["clip"], root / "c_wave_f_nm_np1_fr_med_2.avi")  # flat, beside the class folders
    put(videos["clip"], root / "misc" / "d_jump_f_nm_np1_fr_med_3.avi")  # names no known class

    for subset in ("train", "test"):
        index = load_hmdb51(root, subset=subset)
        assert {name: e.label for name, e in by_name(index).items()} == {
            "a_shoot_bow_f_nm_np1_fr_med_0.avi": 1,
            "b_shoot_bow_f_nm_np1_fr_med_1.avi": 1,
            "c_wave_f_nm_np1_fr_med_2.avi": 0,
        }
        assert list(skipped_by_name(index)) == ["d_jump_f_nm_np1_fr_med_3.avi"]


def test_hmdb51_subset_real_clips():
    if not HMDB51_SUBSET.is_dir():
        pytest.skip(f"{HMDB51_SUBSET} not found")
    assert detect_format(HMDB51_SUBSET) == "hmdb51"
    index = load(HMDB51_SUBSET)
    class_names = (HMDB51_SUBSET / "class_names.txt").read_text().split("\n")

    assert index.class_names == class_names and len(class_names) == 51
    assert len(index) == 8 and index.skipped == []
    assert len({e.label for e in index}) == 6
    entries = by_name(index)
    assert class_names[entries["6arrowswithin30seconds_shoot_bow_f_nm_np1_fr_med_3.avi"].label] == "shoot_bow"
    assert (
        class_names[entries["BaseballHitinSlowMotion_swing_baseball_f_nm_np1_fr_bad_0.avi"].label]
        == "swing_baseball"
    )
    # Labels agree with the dataset's own labels.csv; frame counts with the ffprobe table in DATASET.md.
    for line in (HMDB51_SUBSET / "labels.csv").read_text().splitlines()[1:]:
        path, label = line.split(",")[:2]
        assert class_names[entries[Path(path).name].label] == label
    assert entries["6arrowswithin30seconds_shoot_bow_f_nm_np1_fr_med_3.avi"].frames == 81
    assert entries["TrumanShow_wave_f_nm_np1_fr_med_26.avi"].frames == 48
    assert index.class_counts()["wave"] == 3


# Kinetics ---------------------------------------------------------------------------------


def test_kinetics_csv_finds_each_layout_and_reports_missing(tmp_path, videos):
    root = tmp_path / "kinetics"
    write(
        root / "train.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "air drumming,AAAAAAAAAAA,14,24,train,0\n"
        "air drumming,BBBBBBBBBBB,0,10,train,0\n"
        "abseiling,CCCCCCCCCCC,5,15,train,1\n"
        "zumba,DDDDDDDDDDD,100,110,train,0\n"
        "zumba,EEEEEEEEEEE,3,13,train,0\n",
    )
    put(videos["clip"], root / "train" / "air drumming" / "AAAAAAAAAAA_000014_000024.mp4")
    put(
        videos["clip"], root / "air_drumming" / "BBBBBBBBBBB_000000_000010.mp4"
    )  # label folder with underscores
    put(videos["clip"], root / "CCCCCCCCCCC_000005_000015.mkv")
    put(videos["clip"], root / "DDDDDDDDDDD.mp4")  # the whole YouTube video; EEEEEEEEEEE is missing
    write(root / "validate.csv", "label,youtube_id,time_start,time_end,split\nzumba,FFFFFFFFFFF,0,10,val\n")
    put(videos["clip"], root / "FFFFFFFFFFF_000000_000010.mp4")

    assert detect_format(root) == "kinetics" and detect_format(root / "train.csv") == "kinetics"
    index = load(root, scan=False)
    assert index.class_names == ["abseiling", "air drumming", "zumba"]
    assert {name: (e.label, e.start, e.end) for name, e in by_name(index).items()} == {
        "AAAAAAAAAAA_000014_000024.mp4": (1, None, None),
        "BBBBBBBBBBB_000000_000010.mp4": (1, None, None),
        "CCCCCCCCCCC_000005_000015.mkv": (0, None, None),
        "DDDDDDDDDDD.mp4": (2, 100.0, 110.0),  # the clip is still to be cut from the whole video
    }
    assert list(skipped_by_name(index)) == ["EEEEEEEEEEE_000003_000013"]

    scanned = load(root)  # the whole video is 0.8 s long, so its segment at 100 s cannot be cut
    assert sorted(skipped_by_name(scanned)) == ["DDDDDDDDDDD.mp4", "EEEEEEEEEEE_000003_000013"]
    assert "after the video's end" in skipped_by_name(scanned)["DDDDDDDDDDD.mp4"]

    val = load(root, subset="val")
    assert val.class_names == index.class_names  # taken from train.csv so that labels agree
    assert [(Path(e.path).name, e.label) for e in val] == [("FFFFFFFFFFF_000000_000010.mp4", 2)]


def test_kinetics_test_csv_without_labels(tmp_path, videos):
    csv_path = write(
        tmp_path / "k700" / "test.csv", "youtube_id,time_start,time_end,split\nGGGGGGGGGGG,1,11,test\n"
    )
    put(videos["clip"], tmp_path / "videos" / "test" / "GGGGGGGGGGG_000001_000011.mp4")
    index = load_kinetics(csv_path, videos_root=tmp_path / "videos" / "test")
    assert index.class_names == [] and [e.label for e in index] == [-1]


# Something-Something v2 -------------------------------------------------------------------


def test_something_something_v2(tmp_path, videos):
    root = tmp_path / "ssv2"
    labels = {
        "Holding something": "1",
        "Pushing something from left to right": "0",
        "Putting something on something": "2",
    }
    write(root / "labels" / "labels.json", json.dumps(labels))
    write(
        root / "labels" / "train.json",
        json.dumps(
            [
                {
                    "id": "78687",
                    "label": "holding potato",
                    "template": "Holding [something]",
                    "placeholders": ["potato"],
                },
                {
                    "id": "42326",
                    "label": "putting a cup on a table",
                    "template": "Putting [something] on [something]",
                    "placeholders": ["a cup", "a table"],
                },
            ]
        ),
    )
    write(
        root / "labels" / "validation.json",
        json.dumps(
            [
                {
                    "id": "100",
                    "label": "pushing pen from left to right",
                    "template": "Pushing [something] from left to right",
                    "placeholders": ["pen"],
                },
            ]
        ),
    )
    write(root / "labels" / "test.json", json.dumps([{"id": "7"}]))
    for video_id in ("78687", "42326", "100", "7"):
        put(videos["clip"], root / "20bn-something-something-v2" / f"{video_id}.webm")

    assert detect_format(root) == "ssv2"
    train = load(root)
    assert train.class_names == [
        "Pushing something from left to right",
        "Holding something",
        "Putting something on something",
    ]
    assert {name: e.label for name, e in by_name(train).items()} == {"78687.webm": 1, "42326.webm": 2}
    assert [e.label for e in load(root, subset="validation")] == [0]
    assert [e.label for e in load(root, subset="test")] == [-1]

    write(root / "labels" / "train.json", json.dumps([{"id": "1", "template": "Spinning [something]"}]))
    with pytest.raises(AnnotationError, match="item 0 .*'Spinning something' is not in labels.json"):
        load_ssv2(root)
    write(root / "labels" / "train.json", '[\n  {"id": "1",\n  "template": }\n]')
    with pytest.raises(AnnotationError) as error:
        load_ssv2(root)
    assert error.value.line == 3


# Segments of untrimmed videos and labelled CSVs -------------------------------------------


def test_segments_csv_one_entry_per_segment(tmp_path, videos):
    root = tmp_path / "untrimmed"
    put(videos["clip"], root / "long" / "match.mp4")
    write(
        root / "segments.csv",
        "video,label,start,end\nlong/match.mp4,serve,0,0.25\nlong/match.mp4,smash,0.5,0.75\nlong/match.mp4,serve,0.3,0.45\n",
    )
    assert detect_format(root) == "csv"
    index = load(root)
    assert index.class_names == ["serve", "smash"]
    assert [(e.label, e.start, e.end) for e in index] == [(0, 0.0, 0.25), (1, 0.5, 0.75), (0, 0.3, 0.45)]
    assert {e.path for e in index} == {str(root / "long" / "match.mp4")}


def test_labels_csv_of_whole_videos(tmp_path, videos):
    root = tmp_path / "gestures"
    for name in ("yes.mkv", "no.mkv", "again.mkv"):
        put(videos["clip"], root / name)
    write(root / "labels.csv", "path,label\nyes.mkv,yes\nno.mkv,no\nagain.mkv,again\n")
    index = load(root)
    assert index.class_names == ["again", "no", "yes"]
    assert {name: (e.label, e.start) for name, e in by_name(index).items()} == {
        "yes.mkv": (2, None),
        "no.mkv": (1, None),
        "again.mkv": (0, None),
    }


@pytest.mark.parametrize(
    ("rows", "line", "reason"),
    [
        ("a.mp4,x,0,1\na.mp4,x,2,1\n", 3, "start 2 s is not before end 1 s"),
        ("a.mp4,x,1,1\n", 2, "start 1 s is not before end 1 s"),
        ("\na.mp4,x,0,1\na.mp4,x,-1,1\n", 4, "start '-1' must be a non-negative number"),
        ("a.mp4,x,zero,1\n", 2, "start 'zero' is not a number"),
        ("a.mp4,x,0\n", 2, "3 fields where the header has 4"),
        (",x,0,1\n", 2, "empty video"),
    ],
)
def test_malformed_segment_lines_name_the_line(tmp_path, rows, line, reason):
    csv_path = write(tmp_path / "segments.csv", "video,label,start,end\n" + rows)
    with pytest.raises(AnnotationError, match=reason) as error:
        load_csv(csv_path)
    assert error.value.line == line and error.value.path == str(csv_path)
    assert str(error.value).startswith(f"{csv_path}:{line}: ")


@pytest.mark.parametrize(
    ("file_name", "text", "line", "reason"),
    [
        (
            "ucfTrainTestlist/classInd.txt",
            "1 Basketball\nApplyEyeMakeup\n",
            2,
            "expected '<class number> <class name>'",
        ),
        ("ucfTrainTestlist/classInd.txt", "1 Basketball\n3 Archery\n", None, "from 1 to 2 without gaps"),
        (
            "ucfTrainTestlist/trainlist01.txt",
            "Basketball/v_Basketball_g08_c01.avi 1\n\nArchery/v_Archery_g08_c01.avi 4\n",
            3,
            "class number 4 is not in classInd.txt",
        ),
        (
            "ucfTrainTestlist/trainlist01.txt",
            "Basketball/v_Basketball_g08_c01.avi 1\nv_Archery_g08_c01.avi\n",
            2,
            "expected '<Class>/<video>",
        ),
        (
            "ucfTrainTestlist/trainlist01.txt",
            "Swimming/v_Swimming_g08_c01.avi\n",
            1,
            "expected '<Class>/<video>",
        ),
    ],
)
def test_malformed_ucf101_lines_name_the_line(tmp_path, videos, file_name, text, line, reason):
    root = make_ucf101(tmp_path / "UCF-101", videos)
    write(root / file_name, text)
    with pytest.raises(AnnotationError, match=reason) as error:
        load_ucf101(root)
    assert error.value.line == line and error.value.path == str(root / file_name)


def test_malformed_hmdb51_and_kinetics_lines_name_the_line(tmp_path, videos):
    root = make_hmdb51(tmp_path / "hmdb51", videos)
    write(
        root / "testTrainMulti_7030_splits" / "wave_test_split1.txt",
        "hello_wave_f_nm_np1_fr_goo_0.avi 2\nhello_wave_u_nm_np1_ba_bad_1.avi 3\n",
    )
    with pytest.raises(AnnotationError, match="tag 0 \\(unused\\), 1 \\(train\\) or 2 \\(test\\)") as error:
        load_hmdb51(root)
    assert error.value.line == 2 and error.value.path.endswith("wave_test_split1.txt")

    csv_path = write(
        tmp_path / "k" / "train.csv",
        "label,youtube_id,time_start,time_end,split\nzumba,A,0,10,train\nzumba,B,ten,20,train\n",
    )
    with pytest.raises(AnnotationError, match="time_start 'ten' is not a number") as error:
        load_kinetics(csv_path)
    assert error.value.line == 3
    write(csv_path, "zumba,A,0,10,train\n")  # no header
    with pytest.raises(
        AnnotationError, match="header lacks column\\(s\\) youtube_id, time_start, time_end"
    ) as error:
        load_kinetics(csv_path)
    assert error.value.line == 1


# load_dataset arguments ---------------------------------------------------------------------


def test_load_dataset_rejects_what_it_cannot_read(tmp_path, videos):
    with pytest.raises(BadArgumentError, match="no such file or folder"):
        load_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadArgumentError, match="cannot tell the dataset format"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(BadArgumentError, match="cannot tell the dataset format"):
        load_dataset(write(tmp_path / "other.csv", "a,b\n1,2\n"))
    put(videos["clip"], tmp_path / "data" / "walk" / "a.mp4")
    with pytest.raises(BadArgumentError, match="unknown dataset format 'imagenet'"):
        load_dataset(tmp_path / "data", format="imagenet")
    with pytest.raises(BadArgumentError, match="split must be a whole number"):
        load_dataset(make_ucf101(tmp_path / "ucf", videos), split=0)


# The cache ----------------------------------------------------------------------------------


def test_cache_skips_probes_until_a_file_changes(tmp_path, videos, probe_calls, private_cache):
    root = tmp_path / "data"
    for name in ("walk/a.mp4", "walk/b.mp4", "run/c.mp4"):
        put(videos["clip"], root / name)
    put(videos["empty"], root / "run" / "zero.mp4")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    first = load(root)
    assert len(probe_calls) == 4 and len(first) == 3 and len(first.skipped) == 1
    cache_files = list((private_cache / "index").iterdir())
    assert len(cache_files) == 1 and cache_dir() == private_cache / "index"
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written beside the data

    second = load(root)
    assert len(probe_calls) == 4  # every probe came from the cache
    assert second == first  # skipped files and their reasons included

    changed = root / "walk" / "b.mp4"
    status = changed.stat()
    os.utime(changed, ns=(status.st_atime_ns, status.st_mtime_ns + 10_000_000_000))
    shutil.copyfile(videos["still"], root / "run" / "zero.mp4")  # the empty file is now a (too short) video
    third = load(root)
    assert sorted(Path(p).name for p in probe_calls[4:]) == ["b.mp4", "zero.mp4"]
    assert skipped_by_name(third) == {"zero.mp4": "1 frame(s), fewer than min_frames=2"}

    load(root, cache=False)
    assert len(probe_calls) == 10  # without the cache every video is probed


def test_cache_is_per_dataset_and_survives_a_corrupt_file(tmp_path, videos, probe_calls, private_cache):
    root = make_ucf101(tmp_path / "UCF-101", videos)
    load(root)
    load(root, subset="test")
    cache_files = sorted((private_cache / "index").iterdir())
    assert len(cache_files) == 2  # the split files differ, so the key does
    assert len(probe_calls) == 5

    train_cache = cache_file(load(root, scan=False).source)
    assert train_cache in cache_files
    train_cache.write_text('{"version": 1, "vid')  # e.g. written by a tool that was killed halfway
    assert len(load(root)) == 3
    assert len(probe_calls) == 8  # the 3 train videos again
    assert (
        len(json.loads(train_cache.read_text())["videos"]) == 3
    )  # rewritten whole; the missing video has no record

    edited = root / "ucfTrainTestlist" / "trainlist01.txt"
    edited.write_text(edited.read_text() + "\n")  # another annotation text, another key
    load(root)
    assert len(list((private_cache / "index").iterdir())) == 3
