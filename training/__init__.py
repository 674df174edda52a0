"""Training of CLRNet teachers and CLRKDNet students: losses, assignment, distillation, loop."""
