"""tinynas.cost"""
