"""Pure numerics: numpy in, numpy out. No Qt, napari, database or file names here."""
