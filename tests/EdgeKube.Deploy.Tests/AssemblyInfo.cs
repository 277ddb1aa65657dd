// Packages, units and SD card images are Linux things, and so are these tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
