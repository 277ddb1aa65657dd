using System.Text;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Protobuf;

/// <summary>
/// Reads request bodies sent as <c>application/vnd.kubernetes.protobuf</c>. kubectl 1.32's typed clients
/// (<c>kubectl create namespace</c>, <c>create deployment</c>, <c>create job</c>) send built-in kinds that way
/// and do not fall back to JSON. The body is the "k8s\0" magic and a runtime.Unknown whose raw bytes are the
/// object in the field numbers of k8s.io/api's generated.proto; this turns it into the JSON the API server
/// works with. Only the fields below are known: a body with any other field is refused (415) with a message
/// that says to send JSON, rather than stored with the field lost.
/// </summary>
public static class KubeProtobuf
{
    public const string MediaType = "application/vnd.kubernetes.protobuf";

    private static readonly byte[] Magic = "k8s\0"u8.ToArray();

    /// <summary>Decodes a protobuf request body into the object's JSON (apiVersion, kind and the known fields).</summary>
    public static JsonObject Decode(ReadOnlySpan<byte> body)
    {
        if (!body.StartsWith(Magic))
        {
            throw Unsupported("the body does not start with the Kubernetes protobuf magic number");
        }

        var unknown = new Reader(body[Magic.Length..].ToArray());
        string apiVersion = string.Empty, kind = string.Empty;
        byte[] raw = [];
        while (unknown.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1:
                    var typeMeta = new Reader(unknown.Bytes());
                    while (typeMeta.Next(out var f, out var w))
                    {
                        if (f == 1)
                        {
                            apiVersion = typeMeta.String();
                        }
                        else if (f == 2)
                        {
                            kind = typeMeta.String();
                        }
                        else
                        {
                            typeMeta.Skip(w);
                        }
                    }

                    break;
                case 2:
                    raw = unknown.Bytes();
                    break;
                default:
                    unknown.Skip(wire);
                    break;
            }
        }

        var group = apiVersion.Contains('/', StringComparison.Ordinal) ? apiVersion[..apiVersion.IndexOf('/', StringComparison.Ordinal)] : string.Empty;
        if (!Schemas.Kinds.TryGetValue((group, kind), out var schema))
        {
            throw Unsupported($"{apiVersion}, Kind={kind} is not accepted as protobuf here");
        }

        var obj = ReadMessage(raw, schema, kind);
        obj["apiVersion"] = apiVersion;
        obj["kind"] = kind;
        return obj;
    }

    private static ApiError Unsupported(string why) =>
        new(415, "UnsupportedMediaType", $"the body of the request was in protobuf that EdgeKube cannot read ({why}); send it as application/json (kubectl apply -f does)");

    private static JsonObject ReadMessage(byte[] bytes, Message schema, string path)
    {
        var obj = new JsonObject();
        var reader = new Reader(bytes);
        while (reader.Next(out var number, out var wire))
        {
            if (!schema.Fields.TryGetValue(number, out var field))
            {
                throw Unsupported($"field {number} of {path} is not known");
            }

            var value = ReadValue(reader, field, wire, $"{path}.{field.Name}");
            if (field.Shape == Shape.Ignored || (field.OmitZero && !field.Repeated && IsZero(value)))
            {
                continue;
            }

            switch (field.Shape)
            {
                case Shape.Map or Shape.QuantityMap:
                    var map = obj[field.Name] as JsonObject ?? [];
                    var entry = (JsonObject)value!;
                    map[entry["k"]!.GetValue<string>()] = entry["v"]?.DeepClone();
                    obj[field.Name] = map;
                    break;
                case var _ when field.Repeated:
                    var list = obj[field.Name] as JsonArray ?? [];
                    list.Add(value);
                    obj[field.Name] = list;
                    break;
                default:
                    obj[field.Name] = value;
                    break;
            }
        }

        return obj;
    }

    private static bool IsZero(JsonNode? value) => value switch
    {
        null => true,
        JsonValue v when v.TryGetValue<string>(out var s) => s.Length == 0,
        JsonValue v when v.TryGetValue<long>(out var n) => n == 0,
        JsonValue v when v.TryGetValue<bool>(out var b) => !b,
        _ => false,
    };

    private static JsonNode? ReadValue(Reader reader, Field field, int wire, string path)
    {
        switch (field.Shape)
        {
            case Shape.String:
                return reader.String();
            case Shape.Int:
                return (long)reader.Varint();
            case Shape.Bool:
                return reader.Varint() != 0;
            case Shape.Bytes:
                return Convert.ToBase64String(reader.Bytes());
            case Shape.Message:
                return ReadMessage(reader.Bytes(), field.Sub!, path);
            case Shape.Quantity:
                return QuantityOf(reader.Bytes());
            case Shape.Time:
                var time = new Reader(reader.Bytes());
                long seconds = 0;
                while (time.Next(out var f, out var w))
                {
                    if (f == 1)
                    {
                        seconds = (long)time.Varint();
                    }
                    else
                    {
                        time.Skip(w);
                    }
                }

                // Go's zero time is what an unset timestamp marshals as; in JSON it is null.
                return seconds == 0 ? null : ObjectMeta.Time(DateTimeOffset.FromUnixTimeSeconds(seconds));
            case Shape.IntOrString:
                var ios = new Reader(reader.Bytes());
                long type = 0, intVal = 0;
                var strVal = string.Empty;
                while (ios.Next(out var f, out var w))
                {
                    switch (f)
                    {
                        case 1: type = (long)ios.Varint(); break;
                        case 2: intVal = (long)ios.Varint(); break;
                        case 3: strVal = ios.String(); break;
                        default: ios.Skip(w); break;
                    }
                }

                return type == 1 ? strVal : (JsonNode)intVal;
            case Shape.Map or Shape.QuantityMap:
                var entry = new Reader(reader.Bytes());
                var result = new JsonObject { ["k"] = string.Empty };
                while (entry.Next(out var f, out var w))
                {
                    if (f == 1)
                    {
                        result["k"] = entry.String();
                    }
                    else if (f == 2)
                    {
                        result["v"] = field.Shape == Shape.QuantityMap ? QuantityOf(entry.Bytes()) : entry.String();
                    }
                    else
                    {
                        entry.Skip(w);
                    }
                }

                return result;
            default:
                reader.Skip(wire);
                return null;
        }
    }

    private static string QuantityOf(byte[] bytes)
    {
        var q = new Reader(bytes);
        var text = string.Empty;
        while (q.Next(out var f, out var w))
        {
            if (f == 1)
            {
                text = q.String();
            }
            else
            {
                q.Skip(w);
            }
        }

        return text;
    }

    internal enum Shape
    {
        String,
        Int,
        Bool,
        Bytes,
        Message,
        Map,
        QuantityMap,
        Quantity,
        Time,
        IntOrString,
        Ignored,
    }

    /// <param name="OmitZero">Go's non-pointer fields are always marshalled: their zero value ("", 0, false) means unset, as in JSON's omitempty.</param>
    internal sealed record Field(string Name, Shape Shape, bool Repeated = false, Message? Sub = null, bool OmitZero = false);

    internal sealed class Message(params (int Number, Field Field)[] fields)
    {
        public Dictionary<int, Field> Fields { get; } = fields.ToDictionary(f => f.Number, f => f.Field);
    }

    /// <summary>A protobuf wire-format reader over one message's bytes.</summary>
    private sealed class Reader(byte[] data)
    {
        private int _pos;

        public bool Next(out int field, out int wire)
        {
            if (_pos >= data.Length)
            {
                field = wire = 0;
                return false;
            }

            var tag = Varint();
            field = (int)(tag >> 3);
            wire = (int)(tag & 7);
            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= data.Length)
                {
                    throw Unsupported("truncated varint");
                }

                var b = data[_pos++];
                result |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0)
                {
                    return result;
                }
            }

            throw Unsupported("malformed varint");
        }

        public byte[] Bytes()
        {
            var length = (long)Varint();
            if (length < 0 || _pos + length > data.Length)
            {
                throw Unsupported("truncated field");
            }

            var bytes = data.AsSpan(_pos, (int)length).ToArray();
            _pos += (int)length;
            return bytes;
        }

        public string String() => Encoding.UTF8.GetString(Bytes());

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: _pos += 8; break;
                case 2: Bytes(); break;
                case 5: _pos += 4; break;
                default: throw Unsupported($"wire type {wire}");
            }

            if (_pos > data.Length)
            {
                throw Unsupported("truncated field");
            }
        }
    }
}
