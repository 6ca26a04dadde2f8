"""Take the model header from a multipart form's ``model`` field, and never from the client.

The model header filter (``model_header``) reads ``model`` from JSON bodies only, and acts on nothing else:
a multipart request (``/v1/audio/transcriptions``, ``/v1/images/edits``) carried no model into routing, and
a header the client set on a non-JSON request reached the route table as if Envoy had set it (the listener
now removes that header first: ``model_header.without_model_header``). Envoy AI Gateway reads the form
field. Envoy has no native multipart parser, so this small Lua filter sets the model from the ``model``
field (the whole form is buffered, within the listener's buffer limit) where a JSON body's model goes, the
dynamic metadata routes match on (``model_header``), and in the header, and re-picks the route. It shares
its Lua filter with the streams' usage request (``form_model_and_usage_filter``), which a matcher skips for
every request that is neither ``multipart/form-data`` nor a stream, so other requests do not pay for a Lua
call.
"""

from __future__ import annotations

import string
from typing import Any

from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.extensions.common.matching.v3 import extension_matcher_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from xds.type.matcher.v3 import matcher_pb2
from xds.type.matcher.v3 import string_pb2 as xds_string_pb2

from controlplane.ir import MODEL_HEADER
from controlplane.xds.translator.filters.model_header import MODEL_KEY, MODEL_NAMESPACE
from controlplane.xds.translator.filters.request_matching import request_header_is, skip_unless
from controlplane.xds.translator.filters.stream_usage import (
    ASK_USAGE_FUNCTION,
    STREAM_HEADER,
    ask_usage_script,
    is_openai_stream,
)
from controlplane.xds.translator.messages import pack

_MULTIPART = "multipart/form-data"

_SOURCE_TEMPLATE = """
local MODEL_HEADER = "$header"

local function form_field(data, boundary, name)
  local delimiter = "\\r\\n--" .. boundary
  local at = 1
  while true do
    local first, last = string.find(data, 'name="' .. name .. '"', at, true)
    if first == nil then return nil end
    local before = string.sub(data, first - 1, first - 1)
    if before == " " or before == ";" then
      local body_start = string.find(data, "\\r\\n\\r\\n", last, true)
      if body_start == nil then return nil end
      local body_end = string.find(data, delimiter, body_start + 4, true)
      if body_end == nil then return nil end
      return string.sub(data, body_start + 4, body_end - 1)
    end
    at = last + 1
  end
end

function read_form_model(handle)
  local content_type = handle:headers():get("content-type")
  if content_type == nil or string.find(string.lower(content_type), "multipart/form-data", 1, true) ~= 1 then
    return
  end
  local boundary = string.match(content_type, 'boundary="([^"]+)"')
    or string.match(content_type, "boundary=([^;%s]+)")
  if boundary == nil then return end
  local body = handle:body()
  if body == nil then return end
  local model = form_field(body:getBytes(0, body:length()), boundary, "model")
  if model ~= nil and model ~= "" and not string.find(model, "[\\r\\n]") then
    -- Reading the body yields: the header map must be fetched again.
    handle:headers():replace(MODEL_HEADER, model)
    handle:streamInfo():dynamicMetadata():set("$namespace", "$key", model)
    handle:clearRouteCache()
  end
end
"""


_DISPATCH = f"""
function envoy_on_request(handle)
  if handle:headers():get("{STREAM_HEADER}") == "true" then
    {ASK_USAGE_FUNCTION}(handle)
  else
    read_form_model(handle)
  end
end
"""


def form_model_and_usage_filter() -> Any:
    """The multipart reader, and the streams' usage request (``stream_usage``) in the same Lua filter: most
    requests are neither a form nor a stream, and skip one filter rather than two (3.5k of 357k
    instructions a request on the row 5 route, callgrind on Envoy 1.40). After the body check, whose verdict
    does not concern a form (it marks one as no JSON, and only a JSON request is answered for that). After
    the route's model override too, though the form's model re-picks the route: the override leaves a form
    alone on any route, and a stream's ``stream_options``, which goes in first, would keep the override
    from finding the model opening the body without a walk (382k -> 389k a streamed request)."""
    form = string.Template(_SOURCE_TEMPLATE).substitute(
        header=MODEL_HEADER, namespace=MODEL_NAMESPACE, key=MODEL_KEY
    )
    script = ask_usage_script() + form + _DISPATCH
    lua = lua_pb2.Lua(default_source_code=base_pb2.DataSource(inline_string=script))
    predicate = matcher_pb2.Matcher.MatcherList.Predicate
    is_form = request_header_is(
        "content-type", xds_string_pb2.StringMatcher(prefix=_MULTIPART, ignore_case=True)
    )
    either = predicate(or_matcher=predicate.PredicateList(predicate=[is_form, is_openai_stream()]))
    config = extension_matcher_pb2.ExtensionWithMatcher(
        extension_config=extension_pb2.TypedExtensionConfig(
            name="envoy.filters.http.lua", typed_config=pack(lua)
        ),
        xds_matcher=skip_unless(either),
    )
    return hcm.HttpFilter(name="envoy.filters.http.match_delegate", typed_config=pack(config))
