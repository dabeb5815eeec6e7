"""The Build / Train / Draw tab bar, pinned to the top left of the window on every tab.

A QTabWidget's own bar sits inside the central area, which the Build tab's docks push
to the right (the palette's width) while Train and Draw, without docks, start at the
left edge: the tabs jumped sideways under the teacher's pointer. A QTabBar in a top
toolbar spans the window above the docks, so it stays in one place; it mirrors the tab
widget (whose own bar is hidden), so code and tests keep using the QTabWidget.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QMainWindow, QTabBar, QTabWidget, QToolBar


def pin_tab_bar(window: QMainWindow, tabs: QTabWidget) -> QTabBar:
    """Show `tabs`' pages through a tab bar in a fixed top toolbar; returns that bar."""
    bar = QTabBar()
    bar.setObjectName("pinnedTabBar")
    bar.setDocumentMode(True)
    bar.setExpanding(False)
    bar.setDrawBase(False)
    for index in range(tabs.count()):
        bar.addTab(tabs.tabText(index))
        bar.setTabToolTip(index, tabs.tabToolTip(index))
    bar.setCurrentIndex(tabs.currentIndex())
    tabs.tabBar().hide()

    def _on_bar_current_changed(index: int) -> None:
        if tabs.currentIndex() != index:
            tabs.setCurrentIndex(index)

    def _on_tabs_current_changed(index: int) -> None:
        if bar.currentIndex() != index:
            with QSignalBlocker(bar):
                bar.setCurrentIndex(index)

    bar.currentChanged.connect(_on_bar_current_changed)
    tabs.currentChanged.connect(_on_tabs_current_changed)
    toolbar = QToolBar("Tabs")
    toolbar.setObjectName("tabsToolBar")  # saveState/restoreState need a stable name
    toolbar.setMovable(False)
    toolbar.setFloatable(False)
    toolbar.toggleViewAction().setVisible(False)  # hiding it would hide the only way to switch tabs
    toolbar.setContextMenuPolicy(Qt.ContextMenuPolicy.PreventContextMenu)
    toolbar.addWidget(bar)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    return bar
