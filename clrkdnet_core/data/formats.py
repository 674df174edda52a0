"""The fixed values of the CULane and TuSimple dataset formats: image sizes, CULane's test categories and
their list files, TuSimple's label files and test rows. Plain data: the datasets, writers, metrics, the
synthetic generator and the bag tools all read them from here."""

# (width, height) of every image of the set; the official CULane tool rasterises lanes at this size.
CULANE_IMAGE_SIZE = (1640, 590)
TUSIMPLE_IMAGE_SIZE = (1280, 720)

# The 9 official CULane test categories, in the order of their list files in list/test_split/.
CULANE_CATEGORIES = ("normal", "crowd", "hlight", "shadow", "noline", "arrow", "curve", "cross", "night")
CULANE_CATEGORY_FILES = {name: f"test{index}_{name}.txt" for index, name in enumerate(CULANE_CATEGORIES)}

# The rows (y in pixels) where TuSimple's test labels and predictions give one x per lane.
TUSIMPLE_H_SAMPLES = tuple(range(160, 720, 10))

# TuSimple's label files of each split; the "synth" ones are what the synthetic generator writes.
_TUSIMPLE_TRAIN_FILES = ("label_data_0313.json", "label_data_0601.json", "label_data_synth.json")
_TUSIMPLE_VAL_FILES = ("label_data_0531.json", "label_data_synth_val.json")
TUSIMPLE_SPLIT_FILES = {
    "train": _TUSIMPLE_TRAIN_FILES,
    "val": _TUSIMPLE_VAL_FILES,
    "trainval": _TUSIMPLE_TRAIN_FILES + _TUSIMPLE_VAL_FILES,
    "test": ("test_label.json",),
}
