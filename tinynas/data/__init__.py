"""tinynas.data"""
