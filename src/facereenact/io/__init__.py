"""Reading and writing images and videos; knows nothing about faces."""
