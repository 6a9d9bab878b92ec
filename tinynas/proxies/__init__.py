"""tinynas.proxies"""
