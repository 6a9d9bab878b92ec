"""tinynas.train"""
