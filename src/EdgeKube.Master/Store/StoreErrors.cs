using System.Globalization;

namespace EdgeKube.Master.Store;

/// <summary>
/// The checks and error messages both stores share, worded as the Kubernetes API server words them
/// (<c>GroupResource.String()</c> is "pods" or "deployments.apps", so the key's resource is used as is).
/// </summary>
internal static class StoreErrors
{
    public static void CheckKey(ObjectKey key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key.Resource, "key.Resource");
        ArgumentNullException.ThrowIfNull(key.Namespace, "key.Namespace");
        ArgumentException.ThrowIfNullOrEmpty(key.Name, "key.Name");
    }

    /// <summary>The rule Update and Delete share: the object must exist and, when asked, be at the expected resourceVersion.</summary>
    public static void CheckReplace(ObjectKey key, long? storedResourceVersion, long? expectedResourceVersion, bool delete)
    {
        if (storedResourceVersion is not { } stored)
        {
            throw NotFound(key);
        }

        if (expectedResourceVersion is { } expected && expected != stored)
        {
            throw delete ? PreconditionFailed(key, expected, stored) : Modified(key);
        }
    }

    public static StoreException NotFound(ObjectKey key) =>
        new(StoreErrorKind.NotFound, $"{key.Resource} \"{key.Name}\" not found");

    public static StoreException AlreadyExists(ObjectKey key) =>
        new(StoreErrorKind.AlreadyExists, $"{key.Resource} \"{key.Name}\" already exists");

    /// <summary>An update against a stale resourceVersion (the API server's OptimisticLockErrorMsg).</summary>
    public static StoreException Modified(ObjectKey key) =>
        new(StoreErrorKind.Conflict, $"Operation cannot be fulfilled on {key.Resource} \"{key.Name}\": the object has been modified; please apply your changes to the latest version and try again");

    /// <summary>A delete whose resourceVersion precondition does not hold (the API server's delete precondition message).</summary>
    public static StoreException PreconditionFailed(ObjectKey key, long expected, long stored) =>
        new(StoreErrorKind.Conflict, string.Create(CultureInfo.InvariantCulture, $"Operation cannot be fulfilled on {key.Resource} \"{key.Name}\": Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {stored}"));

    /// <summary>A watch from before the kept history (the watch cache's message: requested, then the oldest it can serve from).</summary>
    public static StoreException TooOld(long requested, long oldest) =>
        new(StoreErrorKind.Expired, string.Create(CultureInfo.InvariantCulture, $"too old resource version: {requested} ({oldest})"));

    public static StoreException FellBehind(string resource, int capacity) =>
        new(StoreErrorKind.Expired, string.Create(CultureInfo.InvariantCulture, $"watch of {resource} closed: the watcher fell more than {capacity} changes behind; list again and watch from the list's resourceVersion"));
}
