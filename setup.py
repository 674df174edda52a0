"""ament_python build of clrkdnet_ros (colcon on a real ROS 2 install; `make` does not use it).

Pure Python: unlike the upstream CLRNet/CLRKDNet setup.py there is no C/CUDA extension (lane NMS is
PyTorch). PyTorch and the other pip-only dependencies come from requirements.txt, not from here.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "clrkdnet_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["clrkdnet_ros", "clrkdnet_ros.*", "clrkdnet_core", "clrkdnet_core.*"]),
    # The Fast DDS profile the node applies to its own participant (clrkdnet_ros/dds_setup.py).
    package_data={"clrkdnet_core": ["presets/*.yaml"], "clrkdnet_ros": ["*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        # The message definitions, for tools that decode bags without the built interfaces (rosbags).
        (f"share/{PACKAGE}/msg", glob("msg/msg/*.msg")),
        # The demo student trained on synthetic scenes, with its preset (training/reproduce_synthetic.py).
        (f"share/{PACKAGE}/models", glob("models/*.pth") + glob("models/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="clrkdnet_ros maintainers",
    maintainer_email="clrkdnet@example.com",
    description="CLRKDNet lane detection node and rosbag2 evaluation tools for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "lane_detector = clrkdnet_ros.lane_detector:main",
            "lane_bag = clrkdnet_ros.bag.__main__:main",
        ],
    },
)
