"""Datasets: the seven OVSS benchmark layouts, custom datasets, and their class vocabularies."""

#: label value that marks pixels without ground truth, after reading any on-disk format
#: (255 in uint8 PNGs, 65535 in ADE-847's uint16 TIFFs, ...). -1 because 255 is a real class above 255 classes.
IGNORE_INDEX = -1
