"""tinynas: find a neural network that fits a microcontroller, and ship it there.

The package is a pipeline of small modules (see DESIGN.md): hardware profiles
turn into budgets, search spaces turn decisions into a framework-free Graph, the
cost model judges the Graph, and deploy/measure put the winner on a board.
"""

__version__ = "0.1.0"
