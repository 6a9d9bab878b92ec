"""tinynas.strategies"""
