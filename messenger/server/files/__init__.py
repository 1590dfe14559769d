"""Files in conversations, server side (docs/PROTOCOL.md, "Files").

`blobs` keeps the bytes on disk, named by their SHA-256; `uploads` receives them (one
upload at a time per content, written in order, resumable); `reads` serves them to those
allowed; `service.FilesService` wires these to the connections (binary frames), the
database and the housekeeping. The JSON actions are in `messenger.server.handlers.files`
and `messenger.server.handlers.attachments`.
"""
