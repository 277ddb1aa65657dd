using System.Text;

namespace EdgeKube.Agent.Store;

/// <summary>Crash-safe file writes: temp file in the same directory, fsync, rename, fsync of the directory.</summary>
public static class AtomicFile
{
    /// <param name="durable">
    /// False skips both fsyncs: the rename still replaces the file whole, but a power cut may lose the
    /// write (or, on some filesystems, leave the file empty, which readers treat as unreadable). For
    /// data that is only a cache of what can be recomputed.
    /// </param>
    public static void WriteAllText(string path, string contents, bool durable = true)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Environment.ProcessId + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
            {
                var bytes = Encoding.UTF8.GetBytes(contents);
                stream.Write(bytes);
                stream.Flush(flushToDisk: durable);
            }

            File.Move(temp, path, overwrite: true);
            if (durable)
            {
                SyncDirectory(dir);
            }
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    public static void Delete(string path)
    {
        if (File.Exists(path))
        {
            File.Delete(path);
            SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }
    }

    /// <summary>Removes temp files left by a crash in the middle of a write.</summary>
    public static void CleanTemporaries(string dir)
    {
        if (!Directory.Exists(dir))
        {
            return;
        }

        foreach (var file in Directory.EnumerateFiles(dir, ".*.tmp"))
        {
            TryDelete(file);
        }
    }

    private static void SyncDirectory(string dir)
    {
        try
        {
            using var handle = File.OpenHandle(dir, FileMode.Open, FileAccess.Read);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Some filesystems cannot open or fsync a directory; the rename is still atomic.
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
