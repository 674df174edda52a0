"""Image geometry of a preset: the camera image, the rows cropped from its top and the network input size.

The networks see the image with the top ``cut_height`` rows removed and the rest resized to ``img_w`` x
``img_h`` (800 x 320). Lanes are predicted in that input and mapped back to the original image.
"""

from dataclasses import dataclass

from clrkdnet_core.errors import InputError


@dataclass(frozen=True)
class ImageGeometry:
    """Original image size, rows removed from its top, and the network input size (all in pixels)."""

    ori_img_w: int
    ori_img_h: int
    cut_height: int
    img_w: int = 800
    img_h: int = 320

    def __post_init__(self) -> None:
        if self.ori_img_w <= 0 or self.ori_img_h <= 0 or self.img_w <= 0 or self.img_h <= 0:
            raise InputError(f"image sizes must be positive, got {self}")
        if not 0 <= self.cut_height < self.ori_img_h:
            raise InputError(f"cut_height must be in [0, ori_img_h={self.ori_img_h}), got {self.cut_height}")

    @property
    def crop_ratio(self) -> float:
        """Fraction of the image height removed from the top (270/590 for CULane)."""
        return self.cut_height / self.ori_img_h

    def cut_height_for(self, image_height: int) -> int:
        """Rows to cut from the top of an image ``image_height`` pixels high (the crop scaled to it)."""
        if image_height <= 0:
            raise InputError(f"image height must be positive, got {image_height}")
        return round(self.cut_height * image_height / self.ori_img_h)

    def scaled_to(self, width: int, height: int) -> "ImageGeometry":
        """The same crop ratio and network input for a camera of ``width`` x ``height`` pixels."""
        if width <= 0 or height <= 0:
            raise InputError(f"image size must be positive, got {width}x{height}")
        return ImageGeometry(width, height, self.cut_height_for(height), self.img_w, self.img_h)
