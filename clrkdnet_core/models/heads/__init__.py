"""CLR head: priors, ROIGather, refinement stages and the auxiliary segmentation decoder."""
