"""The gateway's routes: intake (hot path), task reads and operator transitions, system."""
