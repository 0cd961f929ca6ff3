"""The engine: the only part of reelgate that talks to providers after a task is created."""
