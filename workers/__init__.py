"""TaskIQ broker and task definitions for Herald workers."""
