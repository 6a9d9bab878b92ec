"""tinynas.hardware"""
