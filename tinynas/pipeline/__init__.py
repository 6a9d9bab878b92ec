"""tinynas.pipeline"""
