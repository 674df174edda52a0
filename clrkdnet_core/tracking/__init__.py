"""Lane tracking in the ground frame (or in image rows without a ground projection) and the ego lane's state.

ROS-free (numpy + scipy): the node, ``predict --track`` and the bag evaluation share it through
:class:`clrkdnet_core.perception.LanePerception`.
"""
