"""ROS 2 layer of CLRKDNet lane detection: the ``lane_detector`` node and its message conversions.

Everything model-related lives in the ROS-free :mod:`clrkdnet_core`; these modules only turn ROS messages into
NumPy images and detections back into ``clrkdnet_msgs``, markers and diagnostics.
"""
