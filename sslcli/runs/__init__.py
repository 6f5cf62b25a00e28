"""The run folder: its layout and format version, and rebuilding a trained model from it."""
