"""gRPC API of the TF Serving test double (not TF Serving): PredictionService and ModelService.

Follows model_servers/{prediction_service_impl,model_service_impl,
get_model_status_impl,grpc_status_util}.cc, server.cc (BuildAndStart) and
servables/tensorflow/{predict_impl,classification_service,regression_service,
multi_inference,multi_inference_helper,get_model_metadata_impl,util}.cc.
Evaluation (predict_util.cc, classifier.cc, regressor.cc) lives in
evaluation.py, shared with the REST API; this module maps protos, ModelSpecs
and status codes onto ServerCore and evaluation.
"""

import collections.abc
import concurrent.futures
import re
import threading

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, inference_pb2,
                                     model_management_pb2, model_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2, status_pb2)

import evaluation
from tf_status import Status

ERROR_MESSAGE_LIMIT = 1024  # grpc_status_util.cc
INT32_MAX = (1 << 31) - 1
STATE_ENUM = get_model_status_pb2.ModelVersionStatus.State
_SIMPLE_ATOI = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*")  # absl::SimpleAtoi's syntax
ERROR_CODES = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name

# Metrics ReloadConfigRequest.metric_names can name -> the ServerCore dict holding their cells.
_METRICS = {
    "/tensorflow/serving/request_count": "request_counts",
    "/tensorflow/cc/saved_model/load_attempt_count": "load_attempts",
}


def _require_model_spec(request):
    if not request.HasField("model_spec"):
        raise Status("INVALID_ARGUMENT", "Missing ModelSpec")


def servable_for(core, model_spec):
    """ServerCore::GetServableHandle(ModelSpec): version and version_label are a oneof, the last one sent wins."""
    choice = model_spec.WhichOneof("version_choice")
    return core.servable_handle(model_spec.name, model_spec.version.value if choice == "version" else None,
                                model_spec.version_label if choice == "version_label" else None)


def fill_model_spec(spec, name, signature_name, version):
    """util.cc MakeModelSpec: a given but empty signature name reads serving_default."""
    spec.Clear()
    spec.name = name
    if signature_name is not None:
        spec.signature_name = signature_name or evaluation.DEFAULT_SIGNATURE
    spec.version.value = version


def status_proto(proto, code, message):
    """ToStatusProto: an OK status carries no message."""
    proto.error_code = ERROR_CODES[code].number
    if code != "OK":
        proto.error_message = message


class _InputTensors(collections.abc.Mapping):
    """PredictRequest.inputs read as evaluation.Tensor, each parsed when the evaluator first reads it.

    The real server parses an input only after checking the signature, the
    input count and the alias, so a bad TensorProto must not win over those
    errors; its error names the alias ("tensor parsing error: x").
    """

    def __init__(self, protos):
        self._protos = protos
        self._parsed = {}

    def __getitem__(self, alias):
        if alias not in self._parsed:
            proto = self._protos[alias]  # KeyError for an unknown alias, as a dict
            try:
                self._parsed[alias] = evaluation.tensor_from_proto(proto)
            except Status as e:
                if e.code != "INVALID_ARGUMENT":
                    raise
                raise Status("INVALID_ARGUMENT", "tensor parsing error: %s" % alias)
        return self._parsed[alias]

    def __contains__(self, alias):  # without parsing (Mapping's default would)
        return alias in self._protos

    def __iter__(self):
        return iter(self._protos)

    def __len__(self):
        return len(self._protos)


class _Servicer:
    def __init__(self, core):
        self.core = core

    def _answer(self, context, handler, request, counted_model=None):
        """Run handler(request); a Status becomes the gRPC status with the same code (ToGRPCStatus)."""
        try:
            response = handler(request)
            code, message = "OK", ""
        except Status as e:
            response, code, message = None, e.code, e.message
        if counted_model is not None:  # RecordModelRequestCount(model_spec().name(), status)
            self.core.count_request(counted_model, code)
        if response is None:
            if len(message) > ERROR_MESSAGE_LIMIT:
                message = message[:ERROR_MESSAGE_LIMIT] + "...TRUNCATED"
            context.abort(grpc.StatusCode[code], message)
        return response


class PredictionServicer(_Servicer, prediction_service_pb2_grpc.PredictionServiceServicer):

    def Predict(self, request, context):
        return self._answer(context, self._predict, request, request.model_spec.name)

    def Classify(self, request, context):
        return self._answer(context, self._classify, request, request.model_spec.name)

    def Regress(self, request, context):
        return self._answer(context, self._regress, request, request.model_spec.name)

    def MultiInference(self, request, context):
        return self._answer(context, self._multi_inference, request)

    def GetModelMetadata(self, request, context):
        return self._answer(context, self._metadata, request)

    def _predict(self, request):
        _require_model_spec(request)
        spec = request.model_spec
        servable = servable_for(self.core, spec)
        outputs = run_predict(servable, request)
        response = predict_pb2.PredictResponse()
        fill_model_spec(response.model_spec, spec.name, spec.signature_name, servable.version)
        for alias, tensor in outputs.items():
            response.outputs[alias].CopyFrom(evaluation.tensor_to_proto(tensor))
        return response

    def _classify(self, request):
        return self._run_on_examples(request, evaluation.classify, classification_pb2.ClassificationResponse())

    def _regress(self, request):
        return self._run_on_examples(request, evaluation.regress, regression_pb2.RegressionResponse())

    def _run_on_examples(self, request, run, response):
        """Classify and Regress: the same ModelSpec handling around classifier.cc / regressor.cc."""
        _require_model_spec(request)
        spec = request.model_spec
        servable = servable_for(self.core, spec)
        result = run(servable, spec.signature_name, request.input)
        fill_model_spec(response.model_spec, spec.name, spec.signature_name, servable.version)
        response.result.CopyFrom(result)
        return response

    def _multi_inference(self, request):
        """multi_inference_helper.cc: the first task's ModelSpec picks the servable."""
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        return run_multi_inference(servable_for(self.core, first), request)

    def _metadata(self, request):
        """get_model_metadata_impl.cc: only "signature_def" exists; the answer names no signature."""
        _require_model_spec(request)
        if not request.metadata_field:
            raise Status("INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise Status("INVALID_ARGUMENT", "Metadata field %s is not supported" % field)
        servable = servable_for(self.core, request.model_spec)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.meta_graph_def.signature_def.items():
            signatures.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        fill_model_spec(response.model_spec, servable.name, None, servable.version)
        response.metadata["signature_def"].Pack(signatures)
        return response


def run_predict(servable, request):
    """predict_util.cc RunPredict on a servable: its outputs by alias."""
    return evaluation.predict(servable, request.model_spec.signature_name, _InputTensors(request.inputs),
                              tuple(request.output_filter))


def run_multi_inference(servable, request):
    """multi_inference.cc TensorFlowMultiInferenceRunner::Infer on a servable."""
    model_name = ""
    seen = set()
    for task in request.tasks:
        if not task.model_spec.name:
            raise Status("INVALID_ARGUMENT", "Found ModelSpec with an empty model name.")
        if model_name and task.model_spec.name != model_name:
            raise Status("INVALID_ARGUMENT", "All ModelSpecs in a MultiInferenceRequest must access the same "
                         "model name.")
        model_name = task.model_spec.name
        signature_name = task.model_spec.signature_name or evaluation.DEFAULT_SIGNATURE
        if signature_name in seen:
            raise Status("INVALID_ARGUMENT", "Duplicate evaluation of signature: %s" % signature_name)
        seen.add(signature_name)
        if signature_name not in servable.meta_graph_def.signature_def:
            raise Status("INVALID_ARGUMENT", "Requested signature not found in model graph: %s" % signature_name)
        if task.method_name not in (evaluation.CLASSIFY_METHOD, evaluation.REGRESS_METHOD):
            raise Status("UNIMPLEMENTED", "Unsupported signature method_name: %s" % task.method_name)
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        result = response.results.add()
        if task.method_name == evaluation.CLASSIFY_METHOD:
            result.classification_result.CopyFrom(
                evaluation.classify(servable, task.model_spec.signature_name, request.input))
        else:
            result.regression_result.CopyFrom(
                evaluation.regress(servable, task.model_spec.signature_name, request.input))
        fill_model_spec(result.model_spec, task.model_spec.name, task.model_spec.signature_name,
                        servable.version)
    return response


# PredictionLog's log_type cases that warmup cannot replay (saved_model_warmup.cc RunWarmupRequest).
_UNREPLAYED = {"session_run_log": 5, "predict_streamed_log": 7}


def run_logged_request(servable, log):
    """saved_model_warmup.cc RunWarmupRequest: a warmup record's request, run on the servable being loaded."""
    kind = log.WhichOneof("log_type")
    if kind in _UNREPLAYED:
        raise Status("UNIMPLEMENTED", "Unsupported log_type for warmup: %d" % _UNREPLAYED[kind])
    if kind == "predict_log":
        run_predict(servable, log.predict_log.request)
    elif kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        run = evaluation.classify if kind == "classify_log" else evaluation.regress
        run(servable, request.model_spec.signature_name, request.input)
    elif kind == "multi_inference_log":
        run_multi_inference(servable, log.multi_inference_log.request)


class ModelServicer(_Servicer, model_service_pb2_grpc.ModelServiceServicer):

    def __init__(self, core, log):
        _Servicer.__init__(self, core)
        self.log = log

    def GetModelStatus(self, request, context):
        return self._answer(context, self._status, request)

    def HandleReloadConfigRequest(self, request, context):
        return self._answer(context, self._reload, request)

    def _status(self, request):
        """get_model_status_impl.cc: a label is ignored, every version of the model is listed (highest first)."""
        _require_model_spec(request)
        spec = request.model_spec
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, (state, code, message) in self.core.model_status(
                spec.name, spec.version.value if spec.HasField("version") else None):
            entry = response.model_version_status.add(version=version, state=STATE_ENUM.Value(state))
            status_proto(entry.status, code, message)
        return response

    def _reload(self, request):
        """model_service_impl.cc: only a ModelConfigList, applied by ServerCore::ReloadConfig."""
        config = request.config
        before = self._metric_values(request.metric_names)
        status = None
        if config.WhichOneof("config") == "model_config_list":
            for index, model in enumerate(config.model_config_list.config):
                self.log("I", "tensorflow_serving/model_servers/model_service_impl.cc:47",
                         "\nConfig entry\n\tindex : %d\n\tpath : %s\n\tname : %s\n\tplatform : %s"
                         % (index, model.base_path, model.name, model.model_platform))
            try:
                self.core.reload_config(config)
            except Status as e:
                status = e
        else:
            status = Status("INVALID_ARGUMENT", "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                            "Only ModelConfigList is currently supported")
        if status is not None:
            self.log("E", "tensorflow_serving/model_servers/model_service_impl.cc:63",
                     "ReloadConfig failed: %s" % status.message)
            raise status  # the client sees the gRPC status only, not the response's copy of it
        after = self._metric_values(request.metric_names)
        response = model_management_pb2.ReloadConfigResponse()
        status_proto(response.status, "OK", "")
        for name in sorted(after):
            response.metric.add(name=name, int64_value_increase=after[name] - before[name])
        return response

    def _metric_values(self, names):
        """GetMetrics: the value of each named metric's first point (cells sorted by labels); 0 if unknown."""
        values = {}
        for name in names:
            attribute = _METRICS.get(name)
            with self.core.mu:
                cells = dict(getattr(self.core, attribute)) if attribute else {}
            values[name] = cells[min(cells)] if cells else 0
        return values


def _health_messages():
    """grpc.health.v1 HealthCheckRequest/Response, declared field for field (grpcio-health-checking is not here).

    A pool of their own: the messages cannot clash with a grpc_health module.
    """
    f = descriptor_pb2.FileDescriptorProto(name="serving_double/health.proto", package="grpc.health.v1",
                                           syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto
    request = f.message_type.add(name="HealthCheckRequest")
    request.field.add(name="service", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    response = f.message_type.add(name="HealthCheckResponse")
    statuses = response.enum_type.add(name="ServingStatus")
    for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        statuses.value.add(name=name, number=number)
    response.field.add(name="status", number=1, type=T.TYPE_ENUM, label=T.LABEL_OPTIONAL,
                       type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return (GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")),
            GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")))


HealthCheckRequest, HealthCheckResponse = _health_messages()


class HealthServicer:
    """gRPC's DefaultHealthCheckService as --enable_grpc_healthcheck_service turns it on.

    "" and, set by Server::BuildAndStart, "ModelService" and "PredictionService"
    are SERVING; statuses never change afterwards (no drain on shutdown), so
    Watch sends one answer and stays open until the client leaves.
    """

    SERVICES = ("", "ModelService", "PredictionService")
    MAX_SERVICE_NAME_LENGTH = 200

    def __init__(self, threads):
        # An open Watch holds one of the server's threads (the real server
        # gives them threads of their own): one is always left for calls.
        self._watch_slots = threading.BoundedSemaphore(max(1, threads - 1))

    def _service(self, raw, context):
        try:
            service = HealthCheckRequest.FromString(raw).service
        except DecodeError:
            service = None
        if service is None or len(service.encode("utf-8")) > self.MAX_SERVICE_NAME_LENGTH:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "could not parse request")
        return service

    def check(self, raw, context):
        if self._service(raw, context) not in self.SERVICES:
            context.abort(grpc.StatusCode.NOT_FOUND, "service name unknown")
        return HealthCheckResponse(status=HealthCheckResponse.SERVING)

    def watch(self, raw, context):
        known = self._service(raw, context) in self.SERVICES
        if not self._watch_slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many health watches open on the test double")
        try:
            yield HealthCheckResponse(status=HealthCheckResponse.SERVING if known
                                      else HealthCheckResponse.SERVICE_UNKNOWN)
            done = threading.Event()
            if context.add_callback(done.set):
                done.wait()
        finally:
            self._watch_slots.release()

    def handler(self):
        return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.check, response_serializer=HealthCheckResponse.SerializeToString),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.watch, response_serializer=HealthCheckResponse.SerializeToString),
        })


def parse_channel_arguments(text):
    """server.cc parseGrpcChannelArgs: "k=v,k2=v2"; a value absl::SimpleAtoi reads as an int32 is passed as int."""
    args = []
    for item in text.split(","):
        if not item:
            continue
        key, _, value = item.partition("=")
        if _SIMPLE_ATOI.fullmatch(value) and -INT32_MAX - 1 <= int(value) <= INT32_MAX:
            args.append((key, int(value)))
        else:
            args.append((key, value))
    return args


def start_grpc_server(core, options, log):
    """Server::BuildAndStart's gRPC part: insecure credentials, unlimited messages, the flag's channel arguments.

    gRPC itself sets SO_REUSEADDR and, unless grpc.so_reuseport=0, SO_REUSEPORT,
    so two servers on one port share it silently, as real ones do. Returns the
    started server, or None if a listening address cannot be bound.
    """
    # grpcio keeps the first of repeated arguments: the flag's come first, so that one such as
    # grpc.max_receive_message_length overrides SetMaxMessageSize's unlimited size.
    channel_args = parse_channel_arguments(options["grpc_channel_arguments"])
    channel_args += [("grpc.max_receive_message_length", INT32_MAX), ("grpc.max_send_message_length", INT32_MAX)]
    threads = max(1, options["grpc_max_threads"])
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc")
    server = grpc.server(executor, options=channel_args)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core, log), server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(core), server)
    if options["enable_grpc_healthcheck_service"]:
        server.add_generic_rpc_handlers((HealthServicer(threads).handler(),))
    addresses = []
    if options["port"] != 0:
        addresses.append("[::]:%d" % options["port"])  # gRPC's wildcard: all IPv6 and IPv4 addresses
    if options["grpc_socket_path"]:
        addresses.append("unix:%s" % options["grpc_socket_path"])
    try:
        for address in addresses:
            server.add_insecure_port(address)
    except RuntimeError:
        server.stop(None)
        return None
    server.start()
    return server
