"""tinynas.deploy"""
