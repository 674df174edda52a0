"""rosbag2 tools (``python -m clrkdnet_ros.bag``): bags from lane datasets, offline evaluation on a bag.

Bags are read and written with the pure-Python ``rosbags`` library; the ``clrkdnet_msgs`` types are registered
from the ``.msg`` files, so reading needs no ROS installation and no built interfaces.
"""
