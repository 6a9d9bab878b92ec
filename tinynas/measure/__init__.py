"""tinynas.measure"""
