from django.http import HttpRequest, HttpResponse


def metrics(request: HttpRequest) -> HttpResponse:  # placeholder, replaced by the real exporter
    return HttpResponse(status=404)
