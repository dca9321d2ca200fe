"""How much a file from elsewhere may make tinycnn allocate.

Every reader of files (``tinycnn.load``, checkpoints, ``tinycnn.weights``,
the IDX, CIFAR and image-folder readers) first bounds each size a file
declares by what the file can actually hold, then by the limits below, and
refuses with a ``ValueError`` naming the file before it allocates anything
larger.  They are module attributes, read at every call; raise one for a
legitimately larger file::

    import tinycnn.limits
    tinycnn.limits.max_image_pixels = 20_000 * 20_000
"""

#: Bytes of one array, archive member or decompressed file (4 GiB).
max_array_bytes = 4 << 30

#: Pixels (height x width) of one image in an image folder (4096 x 4096).
max_image_pixels = 1 << 24

#: Arrays in one .npz file.
max_members = 100_000

#: Bytes of the JSON structure of a file written by ``tinycnn.save`` (4 MiB;
#: a checkpoint's is tens of KB).  Parsed, it takes up to ~10x its size.
max_meta_bytes = 4 << 20

#: Nesting depth of the dicts, lists and tuples ``tinycnn.save`` writes and
#: ``tinycnn.load`` reads (a checkpoint needs about 6).
max_depth = 100


def check_nbytes(nbytes, what):
    """``nbytes`` if at most :data:`max_array_bytes`, else a ``ValueError``
    that says what asked for it and how to raise the limit."""
    if nbytes > max_array_bytes:
        raise ValueError(f"{what} declares {nbytes} bytes, over tinycnn.limits.max_array_bytes = {max_array_bytes} "
                         "(raise it if the file is trusted)")
    return nbytes
