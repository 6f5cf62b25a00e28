"""The shared engine: runtime resolution, process launch, collectives, checkpoints, progress.

The engine never knows which command or method it serves.
"""
