"""The vault: walking a folder of Markdown notes, parsing them, and chunking their text."""
