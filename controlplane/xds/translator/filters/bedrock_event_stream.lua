-- Bedrock's InvokeModelWithResponseStream answer (AWS event-stream frames) -> Anthropic's server-sent events.
-- Loaded by bedrock_stream.py, which says why it exists and where it sits. Runs on the response only, chunk
-- by chunk: each chunk is replaced by the events of the frames it completes; a partial frame waits for the
-- next chunk. Frame layout (AWS event-stream encoding): total length u32, headers length u32, prelude CRC32
-- (of those 8 bytes), headers, payload, message CRC32 (of everything before it); big-endian.

local band, bor, bxor, bnot, lshift, rshift = bit.band, bit.bor, bit.bxor, bit.bnot, bit.lshift, bit.rshift
local byte, char, sub, find, match, gsub = string.byte, string.char, string.sub, string.find, string.match,
  string.gsub
local concat = table.concat

local EVENT_STREAM = "application/vnd.amazon.eventstream"
local PRELUDE = 12
local MIN_FRAME = 16
local MAX_FRAME = 16 * 1024 * 1024 -- the encoding's limit
local MAX_HEADERS = 128 * 1024
local HEADER_VALUE_SIZES = { [0] = 0, [1] = 0, [2] = 1, [3] = 2, [4] = 4, [5] = 8, [8] = 8, [9] = 16 }
local STRING_VALUE, BYTES_VALUE = 7, 6
-- Bedrock's exception types as Anthropic's error types (what a client of either API retries on).
local ERROR_TYPES = {
  throttlingException = "rate_limit_error",
  serviceUnavailableException = "overloaded_error",
  validationException = "invalid_request_error",
}

local CRC_TABLE = {}
for index = 0, 255 do
  local crc = index
  for _ = 1, 8 do
    if band(crc, 1) == 1 then
      crc = bxor(rshift(crc, 1), 0xEDB88320)
    else
      crc = rshift(crc, 1)
    end
  end
  CRC_TABLE[index] = crc
end

-- CRC32 (IEEE) of bytes first..last of s, as a signed 32-bit number like every bit op's result.
local function crc32(s, first, last)
  local crc = bnot(0)
  for i = first, last do
    crc = bxor(CRC_TABLE[band(bxor(crc, byte(s, i)), 0xFF)], rshift(crc, 8))
  end
  return bnot(crc)
end

local function u32(s, at)
  local b1, b2, b3, b4 = byte(s, at, at + 3)
  return bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
end

local function u16(s, at)
  local b1, b2 = byte(s, at, at + 1)
  return bor(lshift(b1, 8), b2)
end

local BASE64 = {}
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
for index = 1, 64 do
  BASE64[byte(ALPHABET, index)] = index - 1
end
local PAD = byte("=")

local function base64_decode(text)
  local size = #text
  if size % 4 ~= 0 then return nil end
  local out = {}
  for i = 1, size, 4 do
    local c1, c2, c3, c4 = byte(text, i, i + 3)
    local v1, v2, v3, v4 = BASE64[c1], BASE64[c2], BASE64[c3], BASE64[c4]
    if v1 == nil or v2 == nil then return nil end
    local last = i + 3 == size
    if v3 == nil and not (last and c3 == PAD and c4 == PAD) then return nil end
    if v4 == nil and not (last and c4 == PAD) then return nil end
    local triple = bor(lshift(v1, 18), lshift(v2, 12), lshift(v3 or 0, 6), v4 or 0)
    if v3 == nil then
      out[#out + 1] = char(rshift(triple, 16))
    elseif v4 == nil then
      out[#out + 1] = char(rshift(triple, 16), band(rshift(triple, 8), 0xFF))
    else
      out[#out + 1] = char(rshift(triple, 16), band(rshift(triple, 8), 0xFF), band(triple, 0xFF))
    end
  end
  return concat(out)
end

-- The index of the quote that closes the JSON string opening at `at`, or nil.
local function string_end(json, at)
  local i = at + 1
  while true do
    local found = find(json, '["\\]', i)
    if found == nil then return nil end
    if byte(json, found) == 34 then return found end
    i = found + 2
  end
end

-- The raw (still escaped) value of the top-level string member `key` of a JSON object, or nil.
local function top_level_string(json, key)
  local quoted = '"' .. key .. '"'
  local depth, i, size = 0, 1, #json
  while i <= size do
    local c = byte(json, i)
    if c == 34 then
      local close = string_end(json, i)
      if close == nil then return nil end
      if depth == 1 and sub(json, i, close) == quoted then
        local first = match(json, '^%s*:%s*()"', close + 1)
        if first ~= nil then
          local last = string_end(json, first)
          if last == nil then return nil end
          return sub(json, first + 1, last - 1)
        end
      end
      i = close + 1
    else
      if c == 123 or c == 91 then
        depth = depth + 1
      elseif c == 125 or c == 93 then
        depth = depth - 1
      end
      i = i + 1
    end
  end
  return nil
end

local function json_escape(text)
  return (gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", byte(c))
  end))
end

local function sse(event, data)
  -- A data line ends at a line break: JSON has none outside its strings, where they are escaped.
  data = gsub(data, "[\r\n]", " ")
  if event == nil then return "data: " .. data .. "\n\n" end
  return "event: " .. event .. "\ndata: " .. data .. "\n\n"
end

local function error_event(kind, message)
  local error_type = ERROR_TYPES[kind] or "api_error"
  return sse("error", '{"type":"error","error":{"type":"' .. error_type .. '","message":"' .. message .. '"}}')
end

-- The frame's headers (string values only; the others are skipped), or nil when they do not parse.
local function frame_headers(frame, first, last)
  local headers = {}
  local i = first
  while i <= last do
    local name_size = byte(frame, i)
    if i + 1 + name_size > last then return nil end
    local kind = byte(frame, i + 1 + name_size)
    local name = sub(frame, i + 1, i + name_size)
    i = i + 2 + name_size
    if kind == STRING_VALUE or kind == BYTES_VALUE then
      if i + 1 > last then return nil end
      local size = u16(frame, i)
      if kind == STRING_VALUE then headers[name] = sub(frame, i + 2, i + 1 + size) end
      i = i + 2 + size
    elseif HEADER_VALUE_SIZES[kind] ~= nil then
      i = i + HEADER_VALUE_SIZES[kind]
    else
      return nil
    end
  end
  if i ~= last + 1 then return nil end
  return headers
end

-- The Anthropic event one complete, checked frame carries (an error event for an exception), or nil and
-- why the frame cannot be read.
local function frame_event(frame)
  local size = #frame
  local headers_size = u32(frame, 5)
  local headers = frame_headers(frame, PRELUDE + 1, PRELUDE + headers_size)
  if headers == nil then return nil, "its headers do not parse" end
  local payload = sub(frame, PRELUDE + headers_size + 1, size - 4)
  local message_type = headers[":message-type"] or "event"
  if message_type == "exception" then
    local kind = headers[":exception-type"] or "exception"
    local said = top_level_string(payload, "message") or ""
    return error_event(kind, "Bedrock " .. json_escape(kind) .. ": " .. said)
  end
  if message_type == "error" then
    local code = headers[":error-code"] or "error"
    return error_event(code, "Bedrock " .. json_escape(code) .. ": " .. json_escape(headers[":error-message"] or ""))
  end
  local encoded = match(payload, '"bytes"%s*:%s*"([A-Za-z0-9+/=]*)"')
  if encoded == nil then return "" end -- an event without an Anthropic event in it (none is documented)
  local json = base64_decode(encoded)
  if json == nil then return nil, "its bytes are not base64" end
  return sse(match(json, '^%s*{%s*"type"%s*:%s*"([%w_]+)"') or top_level_string(json, "type"), json)
end

-- The events of every complete frame in data; the bytes of the partial frame after them and how many bytes
-- that frame needs before it can be read; why the stream cannot be read further (nil while it can).
local function convert(data)
  local events = {}
  local at, size = 1, #data
  while size - at + 1 >= PRELUDE do
    local total = u32(data, at)
    if u32(data, at + 8) ~= crc32(data, at, at + 7) then
      return concat(events), "", 0, "a prelude CRC mismatch"
    end
    if total < MIN_FRAME or total > MAX_FRAME or u32(data, at + 4) > math.min(total - MIN_FRAME, MAX_HEADERS) then
      return concat(events), "", 0, "a frame length out of range"
    end
    if size - at + 1 < total then return concat(events), sub(data, at), total, nil end
    local last = at + total - 1
    if u32(data, last - 3) ~= crc32(data, at, last - 4) then
      return concat(events), "", 0, "a message CRC mismatch"
    end
    local event, why = frame_event(sub(data, at, last))
    if event == nil then return concat(events), "", 0, why end
    events[#events + 1] = event
    at = last + 1
  end
  return concat(events), sub(data, at), PRELUDE, nil
end

function envoy_on_response(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type")
  if content_type == nil or find(string.lower(content_type), EVENT_STREAM, 1, true) ~= 1 then
    return -- an error Bedrock answers in JSON before streaming: the transcoder reads it as it is
  end
  -- Before the first chunk: the headers leave with it.
  headers:replace("content-type", "text/event-stream")
  headers:remove("content-length")
  -- The bytes not converted yet, as pieces: a large frame over many chunks is joined once, when complete.
  local pending, buffered, needed, broken = {}, 0, PRELUDE, false
  for chunk in handle:bodyChunks() do
    local size = chunk:length()
    local events = ""
    if not broken and size > 0 then
      pending[#pending + 1] = chunk:getBytes(0, size)
      buffered = buffered + size
    end
    if not broken and buffered >= needed then
      local rest, why
      events, rest, needed, why = convert(concat(pending))
      pending, buffered = { rest }, #rest
      if why ~= nil then
        -- Nothing after an unreadable frame can be trusted to start a frame: end the events here.
        broken = true
        events = events .. error_event("api_error", "Bedrock's event stream is malformed: " .. why)
      end
    end
    if size > 0 or events ~= "" then chunk:setBytes(events) end
  end
end
