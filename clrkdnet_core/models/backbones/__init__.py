"""Feature extractors: torchvision ResNets and DLA-34."""
