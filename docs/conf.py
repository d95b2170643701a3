"""Sphinx configuration of the documentation site. Build it with `python docs/build.py` (see its docstring): it
assembles the pages and the executed notebooks in `_docs/src/` and runs Sphinx on them with this file."""
import mlops_nb

project = 'mlops_nb'
author = 'mlops_nb developers'
release = version = mlops_nb.__version__
extensions = ['myst_nb']
myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3
exclude_patterns = ['_includes/*', '**.ipynb_checkpoints']
source_suffix = {'.md': 'myst-nb', '.ipynb': 'myst-nb'}
root_doc = 'index'

# The notebooks are executed by docs/build.py (each in its own workspace, in parallel), never by myst-nb.
nb_execution_mode = 'off'
nb_merge_streams = True
# widget views are rendered from the widget state saved at build time by the widget manager's JavaScript, which
# myst-nb loads from a CDN: online they show; offline the widgets page's screenshots stand in for them
nb_output_stderr = 'show'

html_theme = 'furo'
html_title = f'mlops_nb {release}'
html_static_path = []
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {'navigation_with_keys': True}
