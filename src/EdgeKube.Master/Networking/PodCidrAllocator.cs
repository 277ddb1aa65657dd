using System.Net;
using System.Net.Sockets;

namespace EdgeKube.Master.Networking;

/// <summary>
/// kube-controller-manager's range allocator for one IPv4 cluster CIDR: hands out subnets of
/// <c>--node-cidr-mask-size</c> bits, lowest free first, never one that is occupied. Pure: the node
/// objects in the store are the record of what is taken (<see cref="Occupy"/> on start), so a restart
/// rebuilds the same picture and never allocates twice.
/// </summary>
public sealed class PodCidrAllocator
{
    private readonly uint _base;
    private readonly int _clusterBits;
    private readonly int _nodeBits;
    private readonly HashSet<uint> _used = [];

    public PodCidrAllocator(string clusterCidr, int nodeMaskSize)
    {
        if (!TryParse(clusterCidr, out _base, out _clusterBits))
        {
            throw new ArgumentException($"\"{clusterCidr}\" is not an IPv4 CIDR (a.b.c.d/n)", nameof(clusterCidr));
        }

        if (nodeMaskSize < _clusterBits || nodeMaskSize > 30)
        {
            throw new ArgumentException($"{nodeMaskSize} must lie between the cluster CIDR's mask ({_clusterBits}) and 30", nameof(nodeMaskSize));
        }

        if (nodeMaskSize - _clusterBits > 16)
        {
            throw new ArgumentException($"{nodeMaskSize} would make more than 65536 node subnets of /{_clusterBits}; kube-controller-manager refuses that too", nameof(nodeMaskSize));
        }

        _nodeBits = nodeMaskSize;
        ClusterCidr = Format(_base, _clusterBits);
    }

    /// <summary>The cluster CIDR, normalised (host bits cleared).</summary>
    public string ClusterCidr { get; }

    /// <summary>How many node subnets the range holds.</summary>
    public int Capacity => 1 << (_nodeBits - _clusterBits);

    /// <summary>How many are taken.</summary>
    public int Used => _used.Count;

    /// <summary>Marks <paramref name="cidr"/> taken (a node already holds it). False when it is not one of this range's node subnets.</summary>
    public bool Occupy(string cidr)
    {
        if (!TryIndex(cidr, out var index))
        {
            return false;
        }

        _used.Add(index);
        return true;
    }

    /// <summary>The lowest free node subnet, now taken; null when the range is full.</summary>
    public string? Allocate()
    {
        for (uint i = 0; i < Capacity; i++)
        {
            if (_used.Add(i))
            {
                return Format(_base + (i << (32 - _nodeBits)), _nodeBits);
            }
        }

        return null;
    }

    /// <summary>Frees <paramref name="cidr"/> (its node was removed).</summary>
    public bool Release(string cidr) => TryIndex(cidr, out var index) && _used.Remove(index);

    /// <summary>Whether <paramref name="cidr"/> is exactly one of this range's node subnets.</summary>
    public bool Contains(string cidr) => TryIndex(cidr, out _);

    private bool TryIndex(string cidr, out uint index)
    {
        index = 0;
        if (!TryParse(cidr, out var address, out var bits) || bits != _nodeBits || (address & Mask(_clusterBits)) != _base)
        {
            return false;
        }

        index = (address - _base) >> (32 - _nodeBits);
        return true;
    }

    private static uint Mask(int bits) => bits == 0 ? 0 : uint.MaxValue << (32 - bits);

    /// <summary>Parses an IPv4 CIDR; the host bits must be zero, as Go's net.ParseCIDR leaves them for the caller to check.</summary>
    public static bool TryParse(string? cidr, out uint network, out int bits)
    {
        network = 0;
        bits = 0;
        var slash = cidr?.IndexOf('/') ?? -1;
        if (slash <= 0
            || !IPAddress.TryParse(cidr![..slash], out var ip) || ip.AddressFamily != AddressFamily.InterNetwork
            || !int.TryParse(cidr[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out bits)
            || bits is < 0 or > 32)
        {
            return false;
        }

        var bytes = ip.GetAddressBytes();
        var value = ((uint)bytes[0] << 24) | ((uint)bytes[1] << 16) | ((uint)bytes[2] << 8) | bytes[3];
        network = value & Mask(bits);
        return network == value;
    }

    private static string Format(uint address, int bits) =>
        $"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}/{bits}";
}
