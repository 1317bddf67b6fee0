"""The one place that knows aiohttp: routes become an aiohttp application, aiohttp's request becomes the
`Request` view, `Response` values become aiohttp responses; plus the access log and the listener."""
