"""The PySide6 + pyqtgraph window. May import the engine; the engine never imports this."""
