namespace EdgeKube.Master.Api.Patching;

/// <summary>
/// The patch is malformed or cannot apply; <see cref="Exception.Message"/> is the text for a 422/400 Status
/// (as the API server words it where it can).
/// </summary>
public sealed class PatchException(string message) : Exception(message);
