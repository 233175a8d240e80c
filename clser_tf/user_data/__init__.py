"""A user's own image-classification data: a tensorflow-datasets name, an image folder, npz.

Each reader returns a :class:`UserData`: the arrays (an :class:`sources.ArrayDataset` of uint8
images, or float32 when the user's arrays were float, and int64 labels in
``[0, len(class_names))``), the class names, and a JSON-ready record of where the data came
from. Single-channel images are ``[N, H, W]``, others ``[N, H, W, C]``. Every problem a user
can fix raises a one-line :class:`DatasetError` naming the bad value or path.
"""

from clser_tf.user_data.arrays_reader import read_arrays
from clser_tf.user_data.common import UserData, parse_image_size
from clser_tf.user_data.folder_reader import read_folder
from clser_tf.user_data.tfds_reader import read_tfds

__all__ = ["UserData", "parse_image_size", "read_arrays", "read_folder", "read_tfds"]
