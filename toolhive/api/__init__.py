"""MCPServer API: pydantic models mirroring ToolHive's CRD, and the CRD generator. Pure: no I/O."""
