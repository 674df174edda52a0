"""Start the clrkdnet_ros lane detector (and optionally RViz2) on one camera.

    ros2 launch clrkdnet_ros lane_detect.launch.py weights:=/path/to/clrkdnet_r18_culane.pth \\
        image_topic:=/front_camera/image_raw camera_info_topic:=/front_camera/camera_info rviz:=true

Parameters come from ``params_file`` (default: the package's config/lane_detect.yaml); the preset, weights,
device, backend, precision, image_transport, tracking, ground_frame_id, camera_pose, dds_profile and
use_sim_time arguments override it. The camera's pose comes from tf2 (ground_frame_id <- the image's
frame_id, e.g. from robot_state_publisher) unless camera_pose or the params file's camera_height sets it. Use
``namespace:=front`` to run one detector per camera (topics become /front/lanes, /front/lane_markers, ...);
RViz then runs in the same namespace.
Without the ground projection the markers are in the camera's frame: pass ``rviz_fixed_frame:=<camera
frame_id>`` when no TF links it to base_link.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from clrkdnet_core.backend_options import AUTO, BACKENDS, PRECISIONS


def generate_launch_description() -> LaunchDescription:
    package_share = FindPackageShare("clrkdnet_ros")
    arguments = [
        DeclareLaunchArgument(
            "image_topic",
            default_value="/camera/image_raw",
            description="Camera image topic (sensor_msgs/Image)",
        ),
        DeclareLaunchArgument(
            "camera_info_topic",
            default_value="/camera/camera_info",
            description="CameraInfo of the camera, used by the flat-ground projection",
        ),
        DeclareLaunchArgument(
            "odom_topic",
            default_value="/odom",
            description="nav_msgs/Odometry of the vehicle: speed and yaw rate for the tracker's prediction",
        ),
        DeclareLaunchArgument(
            "tracking",
            default_value="true",
            choices=["true", "false"],
            description="Track lanes across frames (stable ids, ego_lane); false: per-frame ids by index",
        ),
        DeclareLaunchArgument(
            "ground_frame_id",
            default_value="base_link",
            description="Ground frame on the road (x forward, y left, z up) of ground points and ego_lane; "
            "tf2 gives the camera's pose in it unless the params file sets camera_pose or camera_height",
        ),
        DeclareLaunchArgument(
            "camera_pose",
            default_value="[]",
            description="Camera body pose in ground_frame_id [x, y, z, roll, pitch, yaw] (m, rad; REP-103, "
            "pitch > 0 looks down); [] (default): camera_height/camera_pitch from the params file, else tf2",
        ),
        DeclareLaunchArgument(
            "image_transport",
            default_value="raw",
            choices=["raw", "compressed"],
            description="raw: subscribe to image_topic; compressed: to <image_topic>/compressed (jpeg/png)",
        ),
        DeclareLaunchArgument(
            "preset",
            default_value="clrkdnet_resnet18_culane",
            description="Model preset name or preset YAML path",
        ),
        DeclareLaunchArgument(
            "weights",
            default_value="",
            description="Checkpoint file (.pth) of the preset, or an official file name in the weights cache "
            "(python -m clrkdnet_core.weights); required",
        ),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument(
            "backend",
            default_value=AUTO,
            choices=[AUTO, *BACKENDS],
            description="Inference backend; auto: the fastest installed one for the device (exact fp32, as "
            "the official code: backend:=torch precision:=fp32)",
        ),
        DeclareLaunchArgument(
            "precision",
            default_value=AUTO,
            choices=[AUTO, *PRECISIONS],
            description="auto: the backend's best for the device (never int8); fp32; fp16 (CUDA); bf16 "
            "(openvino); int8 (onnxruntime, openvino; needs the params file's calibration)",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([package_share, "config", "lane_detect.yaml"]),
            description="Parameter YAML file of the node",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the node and its topics (one per camera)"
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            choices=["true", "false"],
            description="Use /clock (true when replaying bags with `ros2 bag play --clock`)",
        ),
        DeclareLaunchArgument(
            "rviz",
            default_value="false",
            choices=["true", "false"],
            description="Also start RViz2 with config/lane_detect.rviz",
        ),
        DeclareLaunchArgument(
            "rviz_fixed_frame",
            default_value="base_link",
            description="RViz fixed frame: ground_frame_id with the ground projection, else the camera's "
            "frame_id (the markers then lie in the image plane) unless TF links it to base_link",
        ),
        DeclareLaunchArgument(
            "dds_profile",
            default_value="true",
            choices=["true", "false"],
            description="Apply the package's Fast DDS profile for large frames to the detector's participant "
            "(never over FASTDDS_*/FASTRTPS_*/CYCLONEDDS_URI or another RMW); false: DDS defaults",
        ),
        DeclareLaunchArgument(
            "log_level",
            default_value="info",
            choices=["debug", "info", "warn", "error", "fatal"],
            description="Log level of the lane detector",
        ),
    ]

    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    detector = Node(
        package="clrkdnet_ros",
        executable="lane_detector",
        name="lane_detector",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                # Typed explicitly so that an empty weights path or a numeric-looking name stays a string.
                "preset": ParameterValue(LaunchConfiguration("preset"), value_type=str),
                "weights": ParameterValue(LaunchConfiguration("weights"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                "precision": ParameterValue(LaunchConfiguration("precision"), value_type=str),
                "image_transport": ParameterValue(LaunchConfiguration("image_transport"), value_type=str),
                "tracking": ParameterValue(LaunchConfiguration("tracking"), value_type=bool),
                "ground_frame_id": ParameterValue(LaunchConfiguration("ground_frame_id"), value_type=str),
                # [] leaves the parameter unset (rcl ignores an empty list), so the params file's pose or tf2
                # applies.
                "camera_pose": ParameterValue(LaunchConfiguration("camera_pose"), value_type=list[float]),
                "dds_profile": ParameterValue(LaunchConfiguration("dds_profile"), value_type=bool),
                "use_sim_time": use_sim_time,
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("odom", LaunchConfiguration("odom_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    # The .rviz file names absolute topics of an un-namespaced detector; RViz runs in the detector's namespace
    # and remaps them to relative names, so one RViz per camera shows that camera's topics.
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=[
            "-d",
            PathJoinSubstitution([package_share, "config", "lane_detect.rviz"]),
            "-f",
            LaunchConfiguration("rviz_fixed_frame"),
        ],
        parameters=[{"use_sim_time": use_sim_time}],
        remappings=[
            ("/camera/image_raw", LaunchConfiguration("image_topic")),
            ("/lane_detector/debug/image", "lane_detector/debug/image"),
            ("/lane_markers", "lane_markers"),
            ("/ego_left_path", "ego_left_path"),
            ("/ego_right_path", "ego_right_path"),
        ],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, detector, rviz])
