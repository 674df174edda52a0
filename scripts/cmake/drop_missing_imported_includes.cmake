# Included into the clrkdnet_msgs project via CMAKE_PROJECT_INCLUDE when building against the
# ROS 2 PyPI wheels (scripts/build_msgs.sh). The wheels' exported targets list include folders of
# the machine that built them (e.g. /opt/python/cp311-cp311/include/python3.11); CMake refuses to
# generate with an imported target naming a folder that does not exist. Once msg/CMakeLists.txt
# has been processed, drop those entries: the Python and NumPy headers our own extension needs
# come from this machine's find_package(Python3 ... Development NumPy) instead.
function(clrkdnet_drop_missing_imported_includes)
  get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    foreach(_dir IN LISTS _dirs)
      # Generator expressions cannot be checked here; keep them as they are.
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        message(STATUS "clrkdnet: dropping missing include folder of ${_target}: ${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL clrkdnet_drop_missing_imported_includes)
