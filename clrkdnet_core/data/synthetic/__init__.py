"""Synthetic road scenes with exact lane labels, and datasets of them in the CULane / TuSimple layouts.

``scene`` is the scene model (camera, road, markings, traffic and the labels they imply), ``sampler`` draws
random scenes, ``drive`` strings scenes into one continuous drive (with an optional lane change and curve),
``truth`` states what is true in each frame of a drive (camera, pose, motion, lane ids, the ego lane),
``render`` paints a scene, ``writer`` writes datasets and ``__main__`` is
``python -m clrkdnet_core.data.synthetic``. The two entry points,
:func:`generate_dataset` and :func:`render_scene`, are importable from here.
"""

from clrkdnet_core.data.synthetic.render import render_scene
from clrkdnet_core.data.synthetic.writer import generate_dataset

__all__ = ["generate_dataset", "render_scene"]
