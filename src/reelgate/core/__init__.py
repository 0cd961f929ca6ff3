"""The domain core: task lifecycle, unified request, capabilities, signing and errors.

Plain Python with no I/O. Everything else in reelgate imports it; it imports nothing of the edges.
"""
