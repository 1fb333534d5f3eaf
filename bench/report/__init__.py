"""Rendering: figures, curves, qualitative panels, saliency maps and the HTML report, from analysis/
and results/. Never imports run/.
"""
