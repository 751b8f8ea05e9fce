// ops-gateway webhook for Zabbix 6.0: posts problem, recovery and update events to
// POST /webhooks/zabbix and returns the ticket key as the event tag __zbx_ticket_key
// (the way Zabbix's Jira/ServiceNow media types keep their issue keys).
// This file is the `script` of ops-gateway.yaml; keep the two in step.
var OpsGateway = {
    // A macro Zabbix could not expand arrives literally ("{EVENT.RECOVERY.ID}").
    clean: function (value) {
        if (typeof value !== 'string') {
            return value;
        }
        return /^\{[A-Z0-9._#]+\}$/.test(value.trim()) ? '' : value;
    },

    body: function (params) {
        var tags = [];
        try {
            tags = JSON.parse(params.event_tags_json || '[]');
        }
        catch (error) {
            tags = [];
        }
        var body = {
            event_id: OpsGateway.clean(params.event_id),
            recovery_event_id: OpsGateway.clean(params.event_recovery_id),
            event_value: OpsGateway.clean(params.event_value),
            event_update_status: OpsGateway.clean(params.event_update_status) || '0',
            event_source: OpsGateway.clean(params.event_source),
            severity: OpsGateway.clean(params.event_severity),
            host: OpsGateway.clean(params.host_name),
            host_ip: OpsGateway.clean(params.host_ip),
            trigger_id: OpsGateway.clean(params.trigger_id),
            trigger_name: OpsGateway.clean(params.event_name),
            tags: Array.isArray(tags) ? tags : [],
            opdata: OpsGateway.clean(params.event_opdata),
            url: '',
            subject: OpsGateway.clean(params.alert_subject),
            message: OpsGateway.clean(params.alert_message),
            event_time: (OpsGateway.clean(params.event_date) + ' ' + OpsGateway.clean(params.event_time)).trim(),
            recovery_time: (OpsGateway.clean(params.event_recovery_date) + ' ' + OpsGateway.clean(params.event_recovery_time)).trim(),
            update_message: OpsGateway.clean(params.event_update_message),
            update_user: OpsGateway.clean(params.event_update_user),
            update_action: OpsGateway.clean(params.event_update_action),
            ticket_key: OpsGateway.clean(params.ticket_key)
        };
        var zabbix = OpsGateway.clean(params.zabbix_url);
        if (zabbix && body.trigger_id) {
            body.url = zabbix.replace(/\/+$/, '') + '/tr_events.php?triggerid=' + encodeURIComponent(body.trigger_id)
                + '&eventid=' + encodeURIComponent(body.event_id);
        }
        return body;
    },

    post: function (params, body) {
        var request = new HttpRequest();
        request.addHeader('Content-Type: application/json');
        if (params.gateway_token) {
            request.addHeader('Authorization: Bearer ' + params.gateway_token);
        }
        if (params.http_proxy) {
            request.setProxy(params.http_proxy);
        }
        var url = params.gateway_url.replace(/\/+$/, '') + '/webhooks/zabbix';
        var response = request.post(url, JSON.stringify(body));
        var status = request.getStatus();
        Zabbix.log(4, '[ops-gateway] ' + url + ' -> ' + status + ': ' + response);
        if (status !== 200) {
            throw 'ops-gateway answered ' + status + ': ' + response;
        }
        return JSON.parse(response);
    }
};

try {
    var params = JSON.parse(value);
    if (!params.gateway_url) {
        throw 'parameter gateway_url is empty';
    }
    // Discovery, autoregistration and internal events have no trigger problem to track.
    if (params.event_source && params.event_source !== '0') {
        return JSON.stringify({});
    }
    var answer = OpsGateway.post(params, OpsGateway.body(params));
    var key = answer.alerts && answer.alerts.length ? answer.alerts[0].ticket : null;
    var result = {tags: {}};
    if (key) {
        result.tags.__zbx_ticket_key = key;
        if (params.gateway_url) {
            result.tags.__zbx_ticket_link = params.gateway_url.replace(/\/+$/, '') + '/api/v1/tickets/' + key;
        }
    }
    return JSON.stringify(result);
}
catch (error) {
    Zabbix.log(3, '[ops-gateway] notification failed: ' + error);
    throw 'ops-gateway notification failed: ' + error;
}
